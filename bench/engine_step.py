"""Benchmark: time per batched fused engine step on the tiny random-weight GRM (CPU by default).

Reports, measured in one run: the median wall time of a fused step (3 queries in one batch),
of a single-mode step (1 query), and their ratio — how much batching saves over 3 separate calls.
Usage: ``. scripts/env.sh && python bench/engine_step.py [--steps 12] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from robo_dopamine_ros.backends.transformers_backend import TransformersBackend, TransformersConfig
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
from robo_dopamine_ros.core.profiles import GENERIC
from robo_dopamine_ros.core.progress import FusionConfig
from robo_dopamine_ros.core.types import Mode
from robo_dopamine_ros.io.frames import demo_episode_dir, open_frames, read_image
from robo_dopamine_ros.models.tiny_grm import build_tiny_grm

CAMERAS = ('cam_high.mp4', 'cam_left_wrist.mp4', 'cam_right_wrist.mp4')


def time_steps(backend: TransformersBackend, modes: tuple[Mode, ...], steps: int) -> list[float]:
    """Wall time of each non-START engine step over the demo episode."""
    episode = demo_episode_dir()
    engine = EpisodeEngine(backend, EngineConfig(fusion=FusionConfig(modes=modes)), GENERIC)
    engine.start('organize the table', read_image(episode / 'goal.png'))
    sources = [open_frames(episode / c) for c in CAMERAS]
    times = []
    try:
        for i in range(steps + 1):
            idx = i * 4
            views = [s.read(idx) for s in sources]
            t0 = time.perf_counter()
            engine.step(Sample(idx * 500_000_000, *views))
            if i > 0:
                times.append(time.perf_counter() - t0)
    finally:
        for s in sources:
            s.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--steps', type=int, default=12)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_grm(Path(tmp) / 'tiny', vocab='qwen')
        backend = TransformersBackend(TransformersConfig(model=str(model), device=args.device))
        time_steps(backend, (Mode.INCREMENTAL,), 2)                      # warm-up
        fused = time_steps(backend, (Mode.INCREMENTAL, Mode.FORWARD, Mode.BACKWARD), args.steps)
        single = time_steps(backend, (Mode.INCREMENTAL,), args.steps)
        backend.close()
    f, s = statistics.median(fused[1:]), statistics.median(single)
    print(f'tiny GRM on {args.device}, demo episode 320x240 -> 224x308, {args.steps} steps')
    print(f'fused step (3 queries, one batch): median {f * 1000:.0f} ms')
    print(f'single-mode step (1 query):        median {s * 1000:.0f} ms')
    print(f'ratio fused/single: {f / s:.2f} (3 separate calls would be 3.00)')


if __name__ == '__main__':
    main()
