#!/usr/bin/env bash
# colcon build of robo_dopamine_ros (msgs + Python package + launcher) into install/.
# Run scripts/setup.sh first. Extra arguments go to `colcon build`.
#
# --symlink-install: install/ links to the sources, so with scripts/env.sh sourced (install/ first
# on PYTHONPATH) edits to existing modules are live without a rebuild; new or removed files and
# msg changes still need one (`make build`). For a deployable copy, run colcon without it (into a
# clean build/ and install/: colcon cannot switch an existing build between the two).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

MODE=$(rdr_mode)
VENV="$ROOT/.venv"
if [[ "$MODE" == offline ]]; then
  echo 'build: skipped: no ROS 2 on this machine (see scripts/setup.sh); offline tools only' >&2
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo 'build: no .venv; run scripts/setup.sh first' >&2
  exit 2
fi
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
unset PYTHONHOME

if [[ "$MODE" == system ]]; then
  rdr_source_setup "/opt/ros/$ROS_DISTRO/setup.bash"
else
  # The wheels' ament index and CMake configs live in the venv prefix. Reset (not append) so
  # that a previously sourced install/ of this workspace does not leak into its own build.
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  unset COLCON_PREFIX_PATH
fi

if ! command -v colcon >/dev/null; then
  echo 'build: colcon not found; with a system ROS 2 install python3-colcon-common-extensions' >&2
  exit 2
fi

# composition_interfaces (needed by launch_ros) comes as source with the ROS 2 tooling that
# scripts/setup.sh lays into the venv (wheels path); a system ROS has it built.
bases=("$ROOT")
if [[ "$MODE" == wheels ]]; then
  if [[ ! -f "$VENV/src/ros2-jazzy/composition_interfaces/package.xml" ]]; then
    echo 'build: no ROS 2 tooling sources in .venv/src/ros2-jazzy; run scripts/setup.sh' >&2
    exit 2
  fi
  bases+=("$VENV/src/ros2-jazzy/composition_interfaces")
fi

start=$SECONDS
if ! colcon --log-base "$ROOT/log" build \
    --base-paths "${bases[@]}" --build-base "$ROOT/build" --install-base "$ROOT/install" \
    --symlink-install --event-handlers console_cohesion- status- desktop_notification- \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" -Wno-dev \
    "$@"; then
  echo "build: FAILED; full logs: $ROOT/log/latest_build/<package>/stdout_stderr.log" >&2
  exit 1
fi
echo "build: done in $((SECONDS - start)) s"
