# shellcheck shell=bash
# Helpers shared by setup.sh, build.sh and env.sh (sourced, not run).

# Which setup path applies here: wheels (ROS 2 from PyPI, Linux x86_64), system (a system ROS 2
# under /opt/ros/$ROS_DISTRO, e.g. a robot PC), or offline (no ROS 2 obtainable: tools only).
rdr_mode() {
  if [[ -n "${RDR_SETUP_MODE:-}" ]]; then
    echo "$RDR_SETUP_MODE"
  elif [[ -n "${ROS_DISTRO:-}" && -f "/opt/ros/${ROS_DISTRO}/setup.bash" ]]; then
    echo system
  elif [[ "$(uname -s)" == Linux && "$(uname -m)" == x86_64 ]]; then
    echo wheels
  else
    echo offline
  fi
}

# Source a ROS/colcon setup file; those reference unset variables, so lift `set -u` meanwhile.
rdr_source_setup() {
  local had_u=0
  [[ $- == *u* ]] && had_u=1
  set +u
  # shellcheck disable=SC1090
  . "$1"
  local rc=$?
  ((had_u)) && set -u
  return "$rc"
}
