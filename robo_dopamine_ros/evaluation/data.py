"""A small benchmark in the upstream layout, rendered from synthetic episodes with known progress.

The real Robo-Dopamine-Bench is a large download; this one is generated in a second, has the
same layout (``jsons/<dataset>.json``, ``images/<episode>/cam_*/frame_NNNNNN.png|jpg``) and the
cases the real data has: a three-view dataset of ``.png`` frames, a front-only ``egodex`` dataset
of ``.jpg`` frames and, with ``defects``, an episode with ``cam_high`` only and one whose right
wrist folder is shorter (both must become failed-episode records, not crashes).

Episodes are rendered by :mod:`robo_dopamine_ros.synthetic` (a pick-and-place seen by three
cameras) and end where the task completes, as a benchmark demonstration does; the ground-truth
progress of every frame is written next to the frames as ``ground_truth.json``, which the
benchmark itself never reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import ConfigError
from ..core.names import CAMERAS
from ..synthetic.episode import render_episode
from ..synthetic.spec import EpisodeSpec, Outcome
from .layout import FRONT, LEFT, RIGHT

THREE_VIEW = 'synthetic_agibot_test'
FRONT_ONLY = 'synthetic_human_egodex_test'
_FOLDERS = dict(zip(CAMERAS, (FRONT, LEFT, RIGHT), strict=True))


@dataclass(frozen=True)
class BenchData:
    """Where a generated benchmark is: pass these to ``robo-dopamine bench``."""

    input_json_dir: Path
    base_dir: Path
    datasets: tuple[str, ...]


def write_bench_data(out_dir: str | Path, *, episodes: int = 3, num_frames: int = 60,
                     size: tuple[int, int] = (160, 120), seed: int = 0,
                     defects: bool = True) -> BenchData:
    """Write a mini benchmark to ``out_dir`` (``jsons/`` and ``images/``).

    Args:
        out_dir: Target directory (created; existing files are overwritten).
        episodes: Good episodes per dataset.
        num_frames: Frames rendered per episode before trimming at task completion.
        size: Frame ``(width, height)``.
        seed: Base seed; episode ``i`` of a dataset renders from a seed derived from it.
        defects: Add the two broken three-view episodes.

    Raises:
        ConfigError: Invalid sizes, or OpenCV (used by the renderer) is missing.
    """
    if episodes < 1:
        raise ConfigError(f'episodes must be >= 1, got {episodes!r}')
    root = Path(out_dir)
    jsons, images = root / 'jsons', root / 'images'
    jsons.mkdir(parents=True, exist_ok=True)
    plan: dict[str, list[tuple[str, int, str | None]]] = {
        THREE_VIEW: [(f'synthetic_agibot/episode_{i:03d}', seed * 1000 + i, None)
                     for i in range(episodes)],
        FRONT_ONLY: [(f'synthetic_human_egodex/episode_{i:03d}', seed * 1000 + 500 + i, None)
                     for i in range(episodes)],
    }
    if defects:
        plan[THREE_VIEW] += [('synthetic_agibot/episode_front_only', seed * 1000 + 900,
                              'front_only'),
                             ('synthetic_agibot/episode_short_wrist', seed * 1000 + 901,
                              'short_wrist')]
    for dataset, rows in plan.items():
        tasks = []
        for name, ep_seed, defect in rows:
            single = dataset == FRONT_ONLY
            tasks.append(_write_episode(images / name, EpisodeSpec(
                seed=ep_seed, num_frames=num_frames, size=size, outcome=Outcome.SUCCESS),
                cameras=('front',) if single or defect == 'front_only' else CAMERAS,
                suffix='.jpg' if single else '.png', short_right=defect == 'short_wrist'))
        (jsons / f'{dataset}.json').write_text(json.dumps(
            {'sample_path_list': [name for name, _, _ in rows], 'sample_path_task': tasks},
            indent=2), encoding='utf-8')
    return BenchData(jsons, images, tuple(plan))


def _write_episode(folder: Path, spec: EpisodeSpec, cameras: tuple[str, ...], suffix: str,
                   short_right: bool) -> str:
    """Render, trim at completion, write the camera folders; returns the task."""
    episode = render_episode(spec)
    progress = np.asarray(episode.progress)
    end = int(np.argmax(progress >= 1.0)) if progress[-1] >= 1.0 else len(progress) - 1
    for cam in cameras:
        target = folder / _FOLDERS[cam]
        target.mkdir(parents=True, exist_ok=True)
        last = end - 3 if short_right and cam == 'right' else end
        for i in range(last + 1):
            # Fast PNG compression: generating the benchmark should take a second, not ten.
            Image.fromarray(episode.frames[cam][i]).save(target / f'frame_{i:06d}{suffix}',
                                                         quality=95, compress_level=1)
    (folder / 'ground_truth.json').write_text(json.dumps(
        {'task': episode.task, 'seed': spec.seed, 'progress': progress[:end + 1].tolist()}),
        encoding='utf-8')
    return episode.task
