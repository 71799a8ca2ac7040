"""The offline demo: score the bundled real episode through the episode engine.

It runs the product's real path — frame source -> engine -> transformers backend — on the
bundled three-camera episode. Without ``--model`` it builds a tiny *random-weight* GRM of the
real class (no download possible offline): its answers are noise, so every step is flagged
invalid, which shows the validity rules rather than a meaningful curve. Give ``--model`` a real
checkpoint (e.g. GRM-3B on a GPU) for real progress.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .core.engine import EngineConfig, EpisodeEngine, Sample
from .core.profiles import profile_for
from .core.result import StepResult
from .core.sampling import SamplerKind, SamplingConfig
from .io.frames import demo_episode_dir, open_frames, read_image
from .offline.plots import plot_results
from .offline.records import ResultWriter

log = logging.getLogger(__name__)

DEMO_TASK = 'organize the table'
CAMERAS = ('cam_high.mp4', 'cam_left_wrist.mp4', 'cam_right_wrist.mp4')


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs on."""

    model: str | None = None          # None -> the tiny random-weight GRM (built once, cached)
    device: str = 'cpu'
    interval_s: float = 2.0
    max_steps: int | None = None
    out_dir: Path = Path('out/demo')
    cache_dir: Path | None = None


def tiny_model_dir(cache_dir: Path | None = None) -> Path:
    """Build (once) and return the tiny random-weight GRM used when no model is given."""
    from .models.tiny_grm import build_tiny_grm

    root = cache_dir or Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache'))
    path = root / 'robo_dopamine_ros' / 'tiny-grm-qwen'
    if not (path / 'model.safetensors').is_file():
        log.info('building the tiny random-weight GRM in %s', path)
        build_tiny_grm(path, vocab='qwen')
    return path


def run_demo(options: DemoOptions,
             on_result: Callable[[StepResult], None] | None = None) -> list[StepResult]:
    """Score the bundled episode; writes results (JSONL, CSV) and a plot to ``out_dir``."""
    from .backends.transformers_backend import TransformersBackend, TransformersConfig

    model = options.model or str(tiny_model_dir(options.cache_dir))
    episode = demo_episode_dir()
    sources = [open_frames(episode / name) for name in CAMERAS]
    try:
        fps = sources[0].fps or 2.0
        sampling = SamplingConfig(SamplerKind.FRAME_INTERVAL,
                                  frame_interval=max(1, round(options.interval_s * fps)))
        profile = profile_for(model)
        backend = TransformersBackend(TransformersConfig(model=model, device=options.device,
                                                         pixel_limits=profile.pixel_limits))
        engine = EpisodeEngine(backend, EngineConfig(sampling=sampling), profile)
        indices = engine.frame_indices(len(sources[0]))
        if options.max_steps is not None:
            indices = indices[:options.max_steps + 1]
        engine.start(DEMO_TASK, read_image(episode / 'goal.png'), episode_id='demo')
        results, records = [], []
        with ResultWriter(options.out_dir) as sink:
            for idx in indices:
                front, left, right = (s.read(idx) for s in sources)
                result = engine.step(Sample(round(idx / fps * 1e9), front, left, right))
                records.append(sink.write(result, frame=sources[0].ref(idx)))
                results.append(result)
                if on_result:
                    on_result(result)
        backend.close()
        plot_results(records, options.out_dir / 'progress.png', f'{DEMO_TASK} ({model})')
        return results
    finally:
        for s in sources:
            s.close()
