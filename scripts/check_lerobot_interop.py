"""Load a relabel-lerobot dataset copy and its progress sidecar with LeRobot itself.

Run it with the Python of an environment where ``lerobot`` is installed (README, "LeRobot
datasets"; it cannot be installed beside this project's venv), after a run such as
``relabel-lerobot DS --out rewards.parquet --write-dataset COPY``::

    /tmp/lerobot-venv/bin/python scripts/check_lerobot_interop.py COPY rewards.parquet \
        rewards.progress.parquet

Checks, each printed: ``LeRobotDatasetMetadata`` reads the ``next.*`` features and their
``meta/stats.json`` entries, the ``meta/episodes`` files have their per-episode ``stats/…``
columns (read with pyarrow: lerobot's metadata loader drops them); ``LeRobotDataset`` loads the
copy and its items carry ``next.reward`` / ``next.done`` / ``next.success`` equal to the
relabelling's output; LeRobot's RA-BC weighting (``RABCWeights``, the code behind
``sample_weighting.progress_path``) reads the sidecar, finds a progress value for every frame and
gives every frame a finite weight. Exit 1 at the first failed check.

Where ``torchvision`` is missing (no CPU build for this torch here), a stub stands in for the
image-transform imports and video frames are decoded for ``LeRobotDataset`` items with PyAV by
this script (the printout says so); ``next.*`` values never pass through that path.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

NEXT = {'next.reward': 'float32', 'next.done': 'bool', 'next.success': 'bool'}
COLUMN = {'next.reward': 'next_reward', 'next.done': 'next_done',
          'next.success': 'next_success'}


def _stub_torchvision() -> bool:
    """Install a stand-in for the torchvision imports of lerobot's dataset modules."""
    try:
        importlib.import_module('torchvision')
        return False
    except Exception:          # noqa: BLE001 - missing or a broken build: both are replaced
        import torch

    v2 = types.ModuleType('torchvision.transforms.v2')
    v2.Transform = torch.nn.Module
    v2.Identity = torch.nn.Identity
    v2.functional = types.ModuleType('torchvision.transforms.v2.functional')
    transforms = types.ModuleType('torchvision.transforms')
    transforms.v2 = v2
    root = types.ModuleType('torchvision')
    root.transforms = transforms
    for module in (root, transforms, v2, v2.functional):     # find_spec must not fail on it
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    sys.modules.update({'torchvision': root, 'torchvision.transforms': transforms,
                        'torchvision.transforms.v2': v2,
                        'torchvision.transforms.v2.functional': v2.functional})
    return True


def _pyav_frames(video_path: str | Path, timestamps: list[float], tolerance_s: float,
                 *_: object, **__: object):
    """The frames at ``timestamps`` (s) as float (n, 3, h, w) in [0, 1], decoded with PyAV."""
    import av
    import torch

    wanted, found = list(timestamps), []
    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        container.seek(max(0, round(wanted[0] / stream.time_base) - 1), backward=True,
                       stream=stream)
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            if abs(t - wanted[len(found)]) <= tolerance_s:
                found.append(frame.to_ndarray(format='rgb24'))
                if len(found) == len(wanted):
                    break
    if len(found) != len(wanted):
        raise RuntimeError(f'{video_path}: {len(found)} of the frames at {wanted}')
    return torch.from_numpy(np.stack(found)).permute(0, 3, 1, 2).float() / 255.0


def _check(ok: bool, what: str) -> None:
    print(('OK    ' if ok else 'FAIL  ') + what)
    if not ok:
        raise SystemExit(1)


def _rabc_class() -> type:
    for name in ('lerobot.rewards.sarm.rabc', 'lerobot.utils.rabc'):   # newer, 0.4.x
        try:
            return importlib.import_module(name).RABCWeights
        except ModuleNotFoundError:
            continue
    raise SystemExit('FAIL  this lerobot has no RABCWeights (RA-BC sample weighting)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('copy', type=Path, help='dataset written by --write-dataset')
    parser.add_argument('out', type=Path, help="relabel-lerobot's --out parquet")
    parser.add_argument('sidecar', type=Path, help='the progress sidecar')
    args = parser.parse_args()
    stubbed = _stub_torchvision()
    import torch
    from lerobot import __version__
    from lerobot.datasets import lerobot_dataset
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    print(f'lerobot {__version__}, torch {torch.__version__}'
          + (', torchvision stubbed, frames decoded with PyAV here' if stubbed else ''))
    if stubbed:
        lerobot_dataset.decode_video_frames = _pyav_frames
    out = pq.read_table(args.out).to_pydict()
    meta = LeRobotDatasetMetadata('local/relabelled', root=args.copy)
    for key, dtype in NEXT.items():
        _check(meta.features.get(key, {}).get('dtype') == dtype, f'feature {key} is {dtype}')
        _check(meta.stats is not None and {'min', 'max', 'mean', 'std', 'count'}
               <= set(meta.stats.get(key, {})), f'meta/stats.json has {key}')
        _check(all(f'stats/{key}/mean' in pq.read_schema(path).names
                   for path in (args.copy / 'meta' / 'episodes').glob('*/*.parquet')),
               f'meta/episodes files have per-episode stats/{key}/… columns')
    ds = LeRobotDataset('local/relabelled', root=args.copy)
    _check(len(ds) == len(out['index']), f'LeRobotDataset has the {len(ds)} frames')
    ends = sorted({0, len(ds) - 1, *(i for i, d in enumerate(out['next_done']) if d),
                   *(i + 1 for i, d in enumerate(out['next_done']) if d and i + 1 < len(ds))})
    for i in ends:
        item = ds[i]
        row = out['index'].index(int(item['index']))
        for key, column in COLUMN.items():
            got = item[key].reshape(-1)[0].item()
            want = out[column][row]
            _check(abs(got - want) <= 1e-6 if key == 'next.reward' else bool(got) == want,
                   f'item {i}: {key} = {got} (relabel output {want})')
    rabc = _rabc_class()(progress_path=args.sidecar, chunk_size=5, head_mode='sparse',
                         device=torch.device('cpu'))
    _check(set(rabc.progress_lookup) == set(out['index']),
           f'RA-BC reads a progress value for every frame ({len(rabc.progress_lookup)})')
    weights, _ = rabc.compute_batch_weights({'index': torch.arange(len(ds))})
    _check(bool(torch.isfinite(weights).all()) and weights.shape == (len(ds),),
           f'RA-BC weights for every frame (min {weights.min():.3f}, max {weights.max():.3f})')
    print(f'lerobot {__version__}: all checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
