# shellcheck shell=bash
# Source me (bash): `. scripts/env.sh`. Activates .venv, overlays the colcon install/ when it
# exists, and sets safe defaults: DDS discovery on loopback only and no Hugging Face downloads.
_rdr_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$_rdr_root/scripts/lib.sh"

if [[ ! -f "$_rdr_root/.venv/bin/activate" ]]; then
  echo "env.sh: no $_rdr_root/.venv; run 'make setup' first" >&2
  return 1
fi
if [[ "$(rdr_mode)" == system ]]; then
  rdr_source_setup "/opt/ros/$ROS_DISTRO/setup.bash"
elif [[ "$(rdr_mode)" == wheels ]]; then
  # The ROS wheels' ament index (message packages, rmw) lives in the venv prefix.
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$_rdr_root/.venv:"*) ;;
    *) export AMENT_PREFIX_PATH="$_rdr_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
  esac
fi
# shellcheck disable=SC1091
. "$_rdr_root/.venv/bin/activate"
if [[ -f "$_rdr_root/install/setup.bash" ]]; then
  rdr_source_setup "$_rdr_root/install/setup.bash"
fi

export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
unset _rdr_root
