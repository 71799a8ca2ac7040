"""The upstream ``run_pipeline`` use: score an episode from videos or frame folders.

Drives the one ``EpisodeEngine`` with the frame-interval sampler (``range(0, N, I)`` plus the last
frame), so an offline score is what the node would compute for the same samples. Writes, in
``out_root/<YY-MM-DD-HH-MM-SS>/``:

* ``sample.json`` and ``pred_vllm.json`` with upstream's field names (docs/upstream.md §4.1,
  §4.2) for a single mode; ``pred_<mode>.json`` per mode plus ``pred_fused.json`` for
  ``fused``/``all``. Frames stay in memory: where upstream stores a cached PNG path we store a
  reference such as ``cam_high.mp4#000123`` (or the frame file name for folders);
* ``results.jsonl``/``results.csv`` (written incrementally), ``progress.png`` and, on request,
  ``reward_vis.mp4`` in upstream's layout.

Modes: a single mode reproduces upstream's numbers (modes chained independently, step-0 rule, no
clamp). ``fused`` runs the paper fusion of all three readings; ``all`` does the same and also
writes each mode's upstream chain, recomputed from the same answers (one pass, three files).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.engine import EngineConfig, EpisodeEngine, Sample
from ..core.monitor import MonitorConfig
from ..core.parsing import ParseStatus
from ..core.profiles import CheckpointProfile
from ..core.progress import FusionConfig, FusionMethod, ProgressState, fuse_step
from ..core.prompt import check_task
from ..core.result import StepResult
from ..core.sampling import SamplerKind, SamplingConfig, frame_interval_indices
from ..core.shaping import ShapingConfig
from ..core.start_goal import StartGoalConfig
from ..core.types import ALL_MODES, GrmBackend, Mode
from ..files.frames import FrameSource, open_cameras, read_image
from ..files.outputs import write_text
from .plots import plot_results
from .records import ResultWriter
from .visualize import VisFrame, write_reward_video


class EpisodeMode(str, enum.Enum):
    """Which readings to run (upstream runs one mode per call; ``all`` does the three at once)."""

    INCREMENTAL = 'incremental'
    FORWARD = 'forward'
    BACKWARD = 'backward'
    FUSED = 'fused'
    ALL = 'all'


@dataclass(frozen=True)
class EpisodeInputs:
    """Where the episode is: a front source, optional wrists (None -> single view), task, goal.

    ``goal=None`` uses the episode's last front frame as REF END, upstream's offline rule.
    ``fps`` is for frame folders (they carry no timing); videos report their own.
    """

    front: Path
    task: str
    left: Path | None = None
    right: Path | None = None
    goal: Path | None = None
    fps: float = 30.0


@dataclass(frozen=True, kw_only=True)
class EpisodeOptions:
    """How to score it."""

    out_root: Path = Path('results')
    frame_interval: int = 30
    mode: EpisodeMode = EpisodeMode.FUSED
    visualize: bool = False
    upstream_zero: bool = False       # parity: an unparseable answer reads as 0, as upstream
    consistency: bool = False         # fused/all only
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    start_goal: StartGoalConfig = field(default_factory=StartGoalConfig)


def engine_config(options: EpisodeOptions) -> EngineConfig:
    """The engine settings of an offline run (frame-interval sampling, the chosen readings)."""
    mode = EpisodeMode(options.mode)
    if mode in (EpisodeMode.FUSED, EpisodeMode.ALL):
        fusion = FusionConfig(consistency=options.consistency)
    else:
        fusion = FusionConfig(modes=(Mode(mode.value),), method=FusionMethod.UPSTREAM)
    return EngineConfig(fusion=fusion, shaping=options.shaping,
                        upstream_zero=options.upstream_zero, monitor=options.monitor,
                        start_goal=options.start_goal,
                        sampling=SamplingConfig(SamplerKind.FRAME_INTERVAL,
                                                frame_interval=options.frame_interval))


def frame_stamp_ns(index: int, fps: float) -> int:
    """The engine stamp of frame ``index`` offline: its time in the episode."""
    return round(index / fps * 1e9)


FrameViews = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


def score_frames(engine: EpisodeEngine, num_frames: int, views: Callable[[int], FrameViews],
                 fps: float) -> Iterator[tuple[int, FrameViews, StepResult]]:
    """The offline loop: the engine's frame indices of an episode, stamped at frame time.

    ``engine.start`` must have opened the episode; ``views(idx)`` gives frame ``idx`` of the
    front and optional wrist cameras. Every offline adapter (videos, LeRobot datasets) steps the
    engine here, so they pick and stamp the same samples.
    """
    for idx in engine.frame_indices(num_frames):
        frame = views(idx)
        yield idx, frame, engine.step(Sample(frame_stamp_ns(idx, fps), *frame))


def upstream_chain(results: list[StepResult], mode: Mode) -> list[tuple[float, float]]:
    """Upstream's per-mode (hop, progress) for each transition, from the recorded answers.

    incremental: hop = the answer; forward/backward: hop = progress - previous progress.
    A reading without a value keeps the previous progress (upstream would have used 0).
    """
    config = FusionConfig(modes=(mode,), method=FusionMethod.UPSTREAM)
    state, out, prev = ProgressState(), [], 0.0
    for r in results:
        reading = r.reading(mode).score
        fused = fuse_step(state, {mode: reading}, config)
        state = fused.state
        progress = fused.progress_raw
        hop = (reading.hop if mode is Mode.INCREMENTAL and reading.hop is not None
               else progress - prev)
        out.append((float(hop), float(progress)))
        prev = progress
    return out


class _Episode:
    """The open frame sources of one episode."""

    def __init__(self, inputs: EpisodeInputs) -> None:
        self.front, self.left, self.right = open_cameras(inputs.front, inputs.left, inputs.right)
        self.fps = self.front.fps or inputs.fps

    @property
    def sources(self) -> list[FrameSource]:
        return [s for s in (self.front, self.left, self.right) if s is not None]

    def views(self, idx: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        return (self.front.read(idx), self.left.read(idx) if self.left else None,
                self.right.read(idx) if self.right else None)

    def refs(self, idx: int) -> list[str]:
        return [(s or self.front).ref(idx) for s in (self.front, self.left, self.right)]

    def close(self) -> None:
        for s in self.sources:
            s.close()


def _goal(inputs: EpisodeInputs, ep: _Episode) -> tuple[np.ndarray, str]:
    """REF END and where it came from: the goal image, else the last front frame."""
    if inputs.goal:
        return read_image(inputs.goal), str(inputs.goal)
    last = len(ep.front) - 1
    return ep.front.read(last), ep.front.ref(last)


def check_episode(inputs: EpisodeInputs, options: EpisodeOptions) -> int:
    """Check what :func:`run_episode` needs besides the model, so that a bad input is refused
    before a model is loaded; returns the number of samples.

    Raises:
        GrmError: The task cannot go into the prompt, a source is missing or the sources are
            unequal, or the goal (given, or the last front frame) cannot be read.
    """
    check_task(inputs.task)
    engine_config(options)
    ep = _Episode(inputs)
    try:
        _goal(inputs, ep)
        return len(frame_interval_indices(len(ep.front), options.frame_interval))
    finally:
        ep.close()


def run_episode(backend: GrmBackend, profile: CheckpointProfile, inputs: EpisodeInputs,
                options: EpisodeOptions,
                on_result: Callable[[StepResult], None] | None = None) -> Path:
    """Score the episode and write the run directory; returns its path."""
    mode = EpisodeMode(options.mode)
    engine = EpisodeEngine(backend, engine_config(options), profile)
    ep = _Episode(inputs)
    try:
        n = len(ep.front)
        goal, goal_ref = _goal(inputs, ep)
        engine.start(inputs.task, goal, episode_id=Path(inputs.front).stem)
        run_ts = time.strftime('%y-%m-%d-%H-%M-%S')
        run_dir = Path(options.out_root) / run_ts
        indices = engine.frame_indices(n)
        results: list[StepResult] = []
        records: list[dict[str, object]] = []        # START included, as replay plots them
        views: dict[int, tuple[np.ndarray, ...]] = {}
        with ResultWriter(run_dir) as sink:
            for idx, (front, left, right), result in score_frames(engine, n, ep.views, ep.fps):
                records.append(sink.write(result, frame_index=idx, frame=ep.front.ref(idx)))
                if options.visualize:
                    views[idx] = (front, left if left is not None else front,
                                  right if right is not None else front)
                if on_result:
                    on_result(result)
                if not result.is_start:
                    results.append(result)
        stamp_to_index = {frame_stamp_ns(i, ep.fps): i for i in indices}
        _write_upstream_json(run_dir, run_ts, mode, inputs.task, results, stamp_to_index, ep,
                             goal_ref)
        if results:
            plot_results(records, run_dir / 'progress.png', inputs.task)
        if options.visualize:
            _write_video(run_dir, mode, results, stamp_to_index, views, goal, indices)
        return run_dir
    finally:
        ep.close()


def _pred_items(mode: Mode | None, run_ts: str, task: str, results: list[StepResult],
                stamp_to_index: dict[int, int], ep: _Episode, goal_ref: str,
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Upstream ``sample.json`` and pred items for one mode (``None``: the fused value)."""
    chain = upstream_chain(results, mode) if mode is not None else None
    start = stamp_to_index[results[0].stamp_before_ns] if results else 0
    samples, preds, prev = [], [], 0.0
    for k, r in enumerate(results):
        after = stamp_to_index[r.stamp_after_ns]
        before = stamp_to_index[r.stamp_before_ns]
        anchor = mode or Mode.INCREMENTAL
        if anchor is Mode.BACKWARD:
            tag, before_refs = 'goal', [goal_ref] * 3
        elif anchor is Mode.FORWARD:
            tag, before_refs = f'start_{start:06d}', ep.refs(start)
        else:
            tag, before_refs = f'bf_{before:06d}', ep.refs(before)
        sample = {'id': f'step-{run_ts}-{k:04d}-{tag}-af_{after:06d}', 'task': task,
                  'image': [ep.front.ref(start), goal_ref, *before_refs, *ep.refs(after)]}
        if chain is not None:
            hop, progress = chain[k]
            reading = r.reading(anchor).score
            extra = {'pred': reading.text, 'parse': reading.status.name.lower()}
        else:
            hop, progress = r.progress - prev, r.progress
            extra = {'pred': {m.value: r.reading(m).score.text for m in ALL_MODES
                              if r.reading(m).score.status is not ParseStatus.SKIPPED},
                     'valid': r.valid, 'reason': r.reason}
        prev = progress
        samples.append(sample)
        preds.append({**sample, **extra, 'hop': hop, 'progress': progress})
    return samples, preds


def _write_upstream_json(run_dir: Path, run_ts: str, mode: EpisodeMode, task: str,
                         results: list[StepResult], stamp_to_index: dict[int, int],
                         ep: _Episode, goal_ref: str) -> None:
    def dump(name: str, data: object) -> None:
        write_text(run_dir / name, json.dumps(data, indent=2, ensure_ascii=False))

    if mode in (EpisodeMode.INCREMENTAL, EpisodeMode.FORWARD, EpisodeMode.BACKWARD):
        samples, preds = _pred_items(Mode(mode.value), run_ts, task, results, stamp_to_index,
                                     ep, goal_ref)
        dump('sample.json', samples)
        dump('pred_vllm.json', preds)
        return
    samples, preds = _pred_items(None, run_ts, task, results, stamp_to_index, ep, goal_ref)
    dump('sample.json', samples)
    dump('pred_fused.json', preds)
    if mode is EpisodeMode.ALL:
        for m in ALL_MODES:
            dump(f'pred_{m.value}.json',
                 _pred_items(m, run_ts, task, results, stamp_to_index, ep, goal_ref)[1])


def _write_video(run_dir: Path, mode: EpisodeMode, results: list[StepResult],
                 stamp_to_index: dict[int, int], views: dict[int, tuple[np.ndarray, ...]],
                 goal: np.ndarray, indices: list[int]) -> None:
    single = Mode(mode.value) if mode.value in {m.value for m in ALL_MODES} else None
    if single is not None:
        values = upstream_chain(results, single)
    else:
        values, prev = [], 0.0
        for r in results:
            values.append((r.progress - prev, r.progress))
            prev = r.progress
    first = views[indices[0]]
    start_views = (goal, goal, goal) if single is Mode.BACKWARD else first
    items = [VisFrame(*start_views, 0.0, 0.0, indices[0], 'Start')]
    for i, (r, (hop, progress)) in enumerate(zip(results, values, strict=True)):
        idx = stamp_to_index[r.stamp_after_ns]
        items.append(VisFrame(*views[idx], hop, progress, idx,
                              f'Step={i + 1} Hop={hop:.2f} Prog={progress:.2f}'))
    write_reward_video(items, run_dir / 'reward_vis.mp4')
