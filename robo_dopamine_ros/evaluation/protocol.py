"""One benchmark episode, evaluated by driving the episode engine (docs/upstream.md §7.2).

The benchmark owns no progress arithmetic: every curve below is the engine's published progress,
and the engine's evenly-spaced sampler picks the frames. REF START is front frame 0 and REF END
the last front frame (the benchmark has no goal images). Passes:

* ``voc+``: incremental mode only, pairs ``(idx[k], idx[k+1])`` in time order from progress 0;
  the curve is the progress after each pair.
* ``voc-``: incremental only, time-reversed pairs (BEFORE ``idx[k+1]``, AFTER ``idx[k]``) from the
  last pair backwards, starting at progress 1.0 (engine options ``ref_start`` and
  ``initial_progress``); pair ``k``'s progress estimates frame ``idx[k]``, so a good model also
  gives an increasing curve.
* ``fused`` (extra): all three readings with the paper fusion, in time order (what the node does).
* ``shuffled`` (extra): after the START frame, the other frames in a seeded random order with
  the forward and backward readings only, so each frame's progress comes from its own two
  readings; the curve is put back in time order. A model that outputs a constant hop gets a
  perfect ``voc+`` (the chain is monotone) but a flat, VOC 0, shuffled curve.

The upstream passes use the benchmark's incremental rule ``p = prev + (1-prev)·H`` (``H >= 0``) /
``prev·(1+H)`` from 0, including the first pair: that is the engine's paper-method incremental
reading, not ``FusionMethod.UPSTREAM``, whose step-0 rule ``p = H`` belongs to
``examples/inference.py``. With ``upstream_parity`` the rest follows the upstream script of the
convention: the GRM script reads a strict ``<score>`` (an unreadable answer marks the episode's
curve ``Error``, hence VOC 0) and evaluates no pair when ``n // interval < 2``; the API script
reads leniently and substitutes 0 for an unreadable answer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.batching import EpisodeBackend
from ..core.engine import EngineConfig, EpisodeEngine, Sample
from ..core.parsing import ParseStatus
from ..core.profiles import GENERIC, CheckpointProfile
from ..core.progress import FusionConfig
from ..core.result import StepResult
from ..core.sampling import SamplerKind, SamplingConfig
from ..core.types import ALL_MODES, Mode
from . import metrics
from .layout import EpisodeEntry, open_entry

_SEC = 1_000_000_000        # offline stamps: one second per position, they only order samples
_INCREMENTAL = (Mode.INCREMENTAL,)
_ANCHORED = (Mode.FORWARD, Mode.BACKWARD)


@dataclass(frozen=True)
class BenchSettings:
    """What an episode's result depends on (a finished record is reused only if they match)."""

    interval: int = 30
    upstream_parity: bool = False
    convention: metrics.Convention = metrics.Convention.GRM
    extra_metrics: bool = True
    seed: int = 0
    profile: CheckpointProfile = GENERIC

    @property
    def grm_parity(self) -> bool:
        """Reproduce ``eval/evaluation_grm.py``'s numbers."""
        return self.upstream_parity and self.convention is metrics.Convention.GRM

    @property
    def api_parity(self) -> bool:
        """Reproduce ``eval/evaluation_api.py``'s numbers."""
        return self.upstream_parity and self.convention is metrics.Convention.API

    def engine_config(self, modes: tuple[Mode, ...]) -> EngineConfig:
        return EngineConfig(
            fusion=FusionConfig(modes=modes), lenient_parse=not self.grm_parity,
            upstream_zero=self.api_parity,
            sampling=SamplingConfig(SamplerKind.EVENLY_SPACED, frame_interval=self.interval))

    def fingerprint(self) -> dict[str, Any]:
        return {'interval': self.interval, 'upstream_parity': self.upstream_parity,
                'convention': self.convention.value, 'extra_metrics': self.extra_metrics,
                'seed': self.seed, 'profile': self.profile.name,
                'pixels': [self.profile.pixel_limits.min_pixels,
                           self.profile.pixel_limits.max_pixels]}


@dataclass
class _Frames:
    """The sampled frames of an episode and the files they came from."""

    num_frames: int
    indices: list[int]
    views: dict[int, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]
    files: dict[int, tuple[str, str, str]]


@dataclass
class EpisodeOutcome:
    """An evaluated episode: its record and the upstream run-dir items of both directions."""

    record: dict[str, Any]
    items: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)


def evaluate_episode(entry: EpisodeEntry, base_dir: Path, settings: BenchSettings,
                     backend: EpisodeBackend) -> EpisodeOutcome:
    """Evaluate one episode through the engine.

    Raises:
        EpisodeDataError: Missing or mismatched camera folders (the caller records it).
        GrmError: Unreadable frames.
    """
    frames = _load(entry, base_dir, settings, backend)
    layout = 'single-view' if entry.single_view else 'three-view'
    record: dict[str, Any] = {
        'name': entry.name, 'task': entry.task, 'status': 'ok',
        'settings': settings.fingerprint(), 'num_frames': frames.num_frames,
        'indices': frames.indices, 'view_layout': layout, 'notes': []}
    if settings.grm_parity and frames.num_frames // settings.interval < 2:
        record.update({'voc+': 0.0, 'voc-': 0.0})
        record['notes'].append(f'{frames.num_frames} frames // interval {settings.interval} '
                               '< 2: the GRM script samples one frame, scores no pair, VOC 0')
        return EpisodeOutcome(record, {False: [], True: []})

    runner = _PassRunner(entry, frames, settings, backend)
    plus = runner.run('voc+', frames.indices, _INCREMENTAL)
    minus = runner.run('voc-', frames.indices[::-1], _INCREMENTAL, reverse=True)
    plus_steps = plus[1:]
    minus_steps = minus[1:][::-1]                  # pair k estimates frame idx[k]
    curves = {'voc+': [r.progress for r in plus_steps], 'voc-': [r.progress for r in minus_steps]}
    record['voc+'] = runner.upstream_voc(plus_steps, curves['voc+'])
    record['voc-'] = runner.upstream_voc(minus_steps, curves['voc-'])
    steps = [*plus_steps, *minus_steps]
    if settings.extra_metrics:
        backend.reuse = True
        fused = runner.run('fused', frames.indices, ALL_MODES)[1:]
        curves['fused'] = [r.progress for r in fused]
        curves['shuffled'], shuffled = runner.shuffled()
        record['voc_fused'] = metrics.voc(curves['fused'])
        record['voc_shuffled'] = metrics.voc(curves['shuffled'])
        steps += fused + shuffled
    record['kendall_tau'] = {name: metrics.kendall_tau(c) for name, c in curves.items()}
    record['hop_sign'] = {
        'forward': metrics.hop_signs([_hop(r) for r in plus_steps], +1),
        'reversed': metrics.hop_signs([_hop(r) for r in minus_steps], -1)}
    record['readings'] = _reading_counts(steps)
    record['queries'] = {'sent': backend.sent, 'reused': backend.reused,
                         'model_seconds': backend.seconds}
    record['curves'] = curves
    items = {False: runner.items(False, plus_steps, frames.indices),
             True: runner.items(True, minus_steps, frames.indices[::-1])}
    return EpisodeOutcome(record, items)


class _PassRunner:
    """Runs the passes of one episode, each on a fresh engine over the shared backend."""

    def __init__(self, entry: EpisodeEntry, frames: _Frames, settings: BenchSettings,
                 backend: EpisodeBackend) -> None:
        self.entry = entry
        self.frames = frames
        self.settings = settings
        self.backend = backend
        first, last = frames.indices[0], frames.indices[-1]
        self.ref_start = frames.views[first][0]
        self.goal = frames.views[last][0]

    def run(self, name: str, order: Sequence[int], modes: tuple[Mode, ...],
            reverse: bool = False) -> list[StepResult]:
        """Step a fresh engine through ``order``; index 0 of the result is the START sample."""
        engine = EpisodeEngine(self.backend, self.settings.engine_config(modes),
                               self.settings.profile)
        start = {'ref_start': self.ref_start, 'initial_progress': 1.0} if reverse else {}
        engine.start(self.entry.task, self.goal, f'{self.entry.dataset}/{self.entry.name}/{name}',
                     **start)
        return [engine.step(Sample(pos * _SEC, *self.frames.views[idx]))
                for pos, idx in enumerate(order)]

    def shuffled(self) -> tuple[list[float], list[StepResult]]:
        """The shuffled pass: its curve in time order over ``idx[1:]``, and its steps.

        A frame whose two readings are both unusable is *held* by the engine, i.e. it repeats
        the progress of the frame queried before it; such steps are flagged and counted as
        parse failures.
        """
        rest = list(self.frames.indices[1:])
        random.Random(f'{self.settings.seed}:{self.entry.name}').shuffle(rest)
        results = self.run('shuffled', [self.frames.indices[0], *rest], _ANCHORED)[1:]
        progress = {idx: r.progress for idx, r in zip(rest, results, strict=True)}
        return [progress[idx] for idx in self.frames.indices[1:]], results

    def upstream_voc(self, steps: list[StepResult], curve: list[float]) -> float:
        """VOC of a ``voc±`` curve; under GRM-script parity an unreadable answer makes it 0."""
        if self.settings.grm_parity and not all(r.valid for r in steps):
            return 0.0
        return metrics.voc(curve)

    def items(self, inverse: bool, steps: list[StepResult],
              order: Sequence[int]) -> list[dict[str, Any]]:
        """Upstream's ``pred_*.json`` items (``sample.json`` is the same without the answers).

        ``steps`` are in pair order ``k``; ``order`` is the frame order the pass was fed in.
        The images are those the engine actually asked about: after an unusable answer it keeps
        the BEFORE sample, so the next pair spans the gap (upstream moves on to the next pair).
        In the id, ``bf``/``af`` are the earlier/later frame, as upstream names them. Fields
        beyond upstream's: ``valid`` and ``parse``; where upstream writes ``"Error"`` for an
        unreadable answer, ``progress`` is the engine's held value and ``valid`` is false.
        """
        idx, files = self.frames.indices, self.frames.files
        run = self.entry.slug
        ref = [files[idx[0]][0], files[idx[-1]][0]]
        out = []
        for k, step in enumerate(steps):
            assert step.stamp_before_ns is not None
            before = order[step.stamp_before_ns // _SEC]
            after = order[step.stamp_after_ns // _SEC]
            bf, af = min(before, after), max(before, after)
            reading = step.reading(Mode.INCREMENTAL).score
            out.append({
                'id': f'step-{run}-{k:04d}-bf_{bf:06d}-af_{af:06d}' + ('_inv' if inverse else ''),
                'task': self.entry.task, 'image': [*ref, *files[before], *files[after]],
                'pred': reading.text, 'hop': reading.hop, 'progress': step.progress,
                'valid': step.valid, 'parse': reading.status.name.lower()})
        return out


def _load(entry: EpisodeEntry, base_dir: Path, settings: BenchSettings,
          backend: EpisodeBackend) -> _Frames:
    """Read the frames the engine's evenly-spaced sampler picks (all views, and their files)."""
    sources = open_entry(base_dir, entry)
    front = sources[0]
    assert front is not None
    n = len(front)
    indices = EpisodeEngine(backend, settings.engine_config(_INCREMENTAL),
                            settings.profile).frame_indices(n)
    views: dict[int, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
    files: dict[int, tuple[str, str, str]] = {}
    for i in indices:
        images = [None if s is None else s.read(i) for s in sources]
        views[i] = (images[0], images[1], images[2])
        paths = [str(s.path / s.ref(i)) for s in sources if s is not None]
        files[i] = (paths[0], paths[1], paths[2]) if len(paths) == 3 else (paths[0],) * 3
    return _Frames(n, indices, views, files)


def _hop(step: StepResult) -> float | None:
    return step.reading(Mode.INCREMENTAL).score.hop


def _reading_counts(steps: Sequence[StepResult]) -> dict[str, int]:
    """Requested readings, and those unreadable (failed or zero-substituted) or lenient."""
    statuses = [m.score.status for r in steps for m in r.readings
                if m.score.status is not ParseStatus.SKIPPED]
    return {'total': len(statuses),
            'failed': sum(s in (ParseStatus.FAILED, ParseStatus.ZEROED) for s in statuses),
            'lenient': sum(s is ParseStatus.LENIENT for s in statuses)}
