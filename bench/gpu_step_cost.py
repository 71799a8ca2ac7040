"""GPU benchmark (prepared; not run for lack of a GPU): real-dimension GRMs of both architectures.

Question answered: what does a fused step cost on a GPU against one single-mode query, with and
without the vision cache, and how much GPU memory does it peak at, for GRM-3B's dimensions
(Qwen2.5-VL-3B) and the assumed GRM-2.0-4B dimensions (Qwen3-VL-4B: text 36 layers, hidden
2560, intermediate 9728, 32 query / 8 key-value heads; vision depth 24, hidden 1024, output
2560, deepstack [5, 11, 17]; unverified)? ROS-free. The weights are initialised randomly, in
bf16, directly on the GPU and never saved: the checkpoint directory holds only the config,
tokenizer and processor files (``RandomInitBackend`` builds the model from ``config.json``).
Random weights never emit ``</score>``, so every answer decodes the full 16 tokens (the real
GRM stops after about 10): decoding is overstated.

Usage (on the GPU machine, in the repository root)::

    python bench/gpu_step_cost.py [--steps 8] [--runs 2] [--arch qwen3_vl]

Writes ``bench/results/gpu_step_cost_<date>_<gpu>.md``. ``--device cpu --tiny`` runs the same
path on the tiny models, to check the script without a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_cost import measure

from robo_dopamine_ros.backends.architectures import backend_profile, model_class
from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
from robo_dopamine_ros.core.profiles import SUPPORTED_ARCHITECTURES
from robo_dopamine_ros.models.tiny_grm import (
    build_tiny_grm,
    real_dimensions_config,
)

RESULTS = Path(__file__).resolve().parent / 'results'


class RandomInitBackend(TransformersBackend):
    """The transformers backend with random weights built on the device from ``config.json``."""

    def _load_model(self, source: str) -> Any:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source, local_files_only=True)
        with torch.device(self.device):
            model = model_class(self.architecture)._from_config(config, dtype=self.dtype)
        return model.eval()


def model_dir(tmp: Path, arch: str, tiny: bool) -> Path:
    """Config, tokenizer and processor files; the tiny weights written beside them are unused."""
    path = build_tiny_grm(tmp / arch, vocab='qwen', architecture=arch)
    if not tiny:
        config = real_dimensions_config(arch)
        config['torch_dtype'] = 'bfloat16'
        (path / 'config.json').write_text(json.dumps(config, indent=2))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=8)
    parser.add_argument('--runs', type=int, default=2)
    parser.add_argument('--device', default='cuda:0')
    parser.add_argument('--arch', action='append', choices=SUPPORTED_ARCHITECTURES)
    parser.add_argument('--tiny', action='store_true', help='tiny models (checks the script)')
    parser.add_argument('--out', type=Path, default=None)
    args = parser.parse_args()
    cuda = args.device.startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gpu = torch.cuda.get_device_name(args.device) if cuda else 'cpu'
    today = datetime.date.today()
    lines = [f'# GPU step cost: {"tiny" if args.tiny else "real-dimension"} random GRMs, bf16',
             '', f'Command: `python bench/gpu_step_cost.py {" ".join(sys.argv[1:])}`', '',
             f'Device: {gpu}, torch {torch.__version__}, {today}. Random weights initialised '
             'on the device, never saved.', '',
             '| architecture | single, ms | fused no cache, ms | fused cache, ms | ratio cache '
             '| ratio no cache | peak GPU memory, GiB |', '|---|---|---|---|---|---|---|']
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch or list(SUPPORTED_ARCHITECTURES):
            path = model_dir(Path(tmp), arch, args.tiny)
            limits = backend_profile('transformers', str(path)).pixel_limits
            if cuda:
                torch.cuda.reset_peak_memory_stats(args.device)
            runs = [measure(args, path, sync, limits, RandomInitBackend)
                    for _ in range(args.runs)]
            peak = torch.cuda.max_memory_allocated(args.device) / 2**30 if cuda else 0.0
            results = sorted((r for r, _, _ in runs), key=lambda r: r['fused, cache']['step']
                             / r['single']['step'])[len(runs) // 2]
            single = results['single']['step']
            plain, cached = results['fused, no cache']['step'], results['fused, cache']['step']
            lines.append(f'| {arch} | {single * 1e3:.1f} | {plain * 1e3:.1f} | '
                         f'{cached * 1e3:.1f} | {cached / single:.2f} | {plain / single:.2f} | '
                         f'{peak:.2f} |')
    text = '\n'.join(lines) + '\n'
    name = re.sub(r'[^A-Za-z0-9]+', '-', gpu).strip('-').lower()
    out = args.out or RESULTS / f'gpu_step_cost_{today}_{name}.md'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == '__main__':
    main()
