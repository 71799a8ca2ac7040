"""Benchmark: the cost of a fused engine step against its floor, one single-mode query.

Question answered: does fusing three readings per step (incremental, forward, backward: 3
queries of 8 images) stay within twice the cost of one upstream-style query, and where does a
step's time go? Measured in one run for each GRM architecture (Qwen2.5-VL: GRM-3B; Qwen3-VL:
the GRM-2.0 previews), over the bundled demo episode (3 cameras, 320x240 -> 224x308 at factor
28, 88 visual tokens per image; 224x320 at factor 32, 70 tokens), with the transformers backend
and greedy decoding:

* **single**: a single-mode step (1 query) with the vision cache off, as upstream runs each mode;
* **fused, no cache**: a fused step (3 queries, one batch), vision cache off;
* **fused, cache**: the same with the vision cache on (the default);
* per configuration, the median split of a step into vision tower (``model.visual``; transformers
  5.24 runs it in ``generate`` before the first forward, 5.17 inside it: counted as vision either
  way), prefill (the first model forward: the language model over the whole prompt), decoding
  (later forwards), the processor (image preprocessing + tokenisation), ``generate``'s own
  loop (logits processors, stop criteria, cache lookups) and our code (resizing the views and
  building the queries as the engine does, the cache's digests and hints, decoding the answers);
* the prompt's shared prefix (system line, prompt head, REF START and REF END images), the part
  a prefix key/value cache could skip.

Phases are timed by wrapping methods of the backend and model instances (with
``torch.cuda.synchronize`` on a GPU), so a configuration's phases add up to its step time.

Usage: ``. scripts/env.sh && python bench/step_cost.py [--steps 12] [--runs 3] [--arch A]``
(tiny random GRMs of both architectures unless ``--arch`` names one, CPU, one torch thread; ~20 s
a run). On a GPU: ``python bench/step_cost.py --real-dims --device cuda:0`` builds random-weight
models of the real GRM-3B and the assumed Qwen3-VL-4B dimensions on the device
(``random_grm.py``: ``real_dimensions_config(arch)``, bfloat16, weights never written;
``bench/gpu.sh`` runs it).
Writes ``bench/results/step_cost.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from random_grm import RandomInitBackend, random_grm_dir

from robo_dopamine_ros.backends.architectures import backend_profile
from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
from robo_dopamine_ros.backends.transformers_config import TransformersConfig
from robo_dopamine_ros.core.images import PixelLimits, prepare, resize_to, visual_tokens
from robo_dopamine_ros.core.profiles import SUPPORTED_ARCHITECTURES
from robo_dopamine_ros.core.types import ALL_MODES, Answer, ImageKey, KeyedImage, Mode, Query
from robo_dopamine_ros.files.frames import demo_episode_dir, open_frames, read_image

CAMERAS = ('cam_high.mp4', 'cam_left_wrist.mp4', 'cam_right_wrist.mp4')
TASK = 'organize the table'
PHASES = ('vision', 'prefill', 'decode', 'processor', 'generate_loop', 'ours')
VISION_START = 151652
NOTES = """## Notes

* **Why no prefix key/value cache.** Reusing the shared prefix's keys and values within a step
  (3 rows) and across steps (the prefix is the same for a whole episode) is possible in
  principle, but not through `generate` unchanged in transformers 5.24: its M-RoPE positions
  come from `get_rope_index` over the whole prompt and *all* image grids, while the encoder
  outputs and the placeholder check (`get_placeholder_mask`) would have to cover only the
  images of the uncached suffix; the cache would have to be copied and expanded to the batch
  each step, since `generate` appends to it; and left padding puts the prefix at a different
  offset in rows of different length (a backward query whose goal differs in size from the
  views, e.g. the blank goal). The gain is bounded by the prefix share of the prefill (figure
  above), so it was measured, not built. vLLM's automatic prefix caching does take this prefix
  (`backends/vllm_backend.py`).
* **Where the rest goes (tiny model, CPU).** The tiny tower is cheap, so the vision cache
  removes a smaller part of the step than it would on the real model. Prefill and decoding of 3
  rows cost 2-3 times one row on a CPU. The processor preprocesses each distinct image of a
  batch once (`DistinctImages`: 10 of 24 in a fused step) but still tokenises 3 prompts and
  assembles the pixel rows of all 24 images, which the model's inputs must keep. On a GPU,
  decoding 3 rows costs about what one row does and the real tower (32 blocks, 1280 wide) is a
  large part of an uncached step, so the ratio there should be lower; it was not measured (no
  GPU for this run): `python bench/step_cost.py --real-dims --device cuda:0`.
* **Qwen3-VL.** The cache also holds the tower's deepstack features (one tensor per tapped block
  and image). A Qwen3-VL frame costs fewer visual tokens at the same pixel bounds (factor 32:
  70 instead of 88 for a 640x480 or 320x240 frame), so its prompts are
  shorter; the tiny models say nothing about the real 4B tower's cost.
* The random model never emits `</score>`, so every answer runs the full 16 new tokens; the real
  GRM stops after about 10, so decoding is overstated here.
"""
RESULTS = Path(__file__).resolve().parent / 'results' / 'step_cost.md'
#: The section bench/prefill_cost.py writes into the results (kept when this script rewrites them).
SECTION_PREFILL = '## Answer prefill (demo GRMs)'


@dataclass
class Clock:
    """Accumulates phase times of the current step; ``sync`` waits for the GPU first."""

    sync: Callable[[], None]
    totals: dict[str, float] = field(default_factory=dict)
    #: Calls per phase (``decode``: decode steps, one per new token of the whole batch).
    calls: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.totals, self.calls = {}, {}

    def add(self, phase: str, seconds: float) -> None:
        self.totals[phase] = self.totals.get(phase, 0.0) + seconds
        self.calls[phase] = self.calls.get(phase, 0) + 1

    def timed(self, phase: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` with its wall time (GPU work included) added to ``phase``."""
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.sync()
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.sync()
                self.add(phase, time.perf_counter() - t0)
        return wrapper


def instrument(backend: TransformersBackend, clock: Clock) -> None:
    """Time the backend's phases: processor, generate, model forwards, tower, digests."""
    model = backend.model
    backend._encode = clock.timed('processor', backend._encode)
    model.generate = clock.timed('generate', model.generate)
    visual = model.model.visual
    visual.forward = clock.timed('vision', visual.forward)
    if backend.vision_cache is not None:
        cache = backend.vision_cache
        cache._digests = clock.timed('digests', cache._digests)
    forward = model.forward

    def tower() -> float:
        return clock.totals.get('vision', 0.0) + clock.totals.get('digests', 0.0)

    @functools.wraps(forward)
    def timed_forward(*args: Any, **kwargs: Any) -> Any:
        phase = 'prefill' if kwargs['input_ids'].shape[1] > 1 else 'decode'
        before = tower()
        try:
            return clock.timed(phase, forward)(*args, **kwargs)
        finally:    # a tower run inside the forward (transformers 5.17) is vision, not prefill
            clock.totals[phase] -= tower() - before

    model.forward = timed_forward


def split(step_s: float, t: dict[str, float]) -> dict[str, float]:
    """A step's wall time as the six reported phases (they sum to ``step_s``)."""
    model = sum(t.get(p, 0.0) for p in ('vision', 'digests', 'prefill', 'decode'))
    return {'vision': t.get('vision', 0.0),
            'prefill': t.get('prefill', 0.0),
            'decode': t.get('decode', 0.0),
            'processor': t.get('processor', 0.0),
            'generate_loop': t.get('generate', 0.0) - model,
            'ours': step_s - t.get('generate', 0.0) - t.get('processor', 0.0)
            + t.get('digests', 0.0)}


def demo_frames(steps: int) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """The demo episode's goal and the 3 camera frames of each step (every 4th frame, 2 s)."""
    episode = demo_episode_dir()
    sources = [open_frames(episode / c) for c in CAMERAS]
    try:
        frames = [[s.read(i * 4) for s in sources] for i in range(steps + 1)]
    finally:
        for s in sources:
            s.close()
    return read_image(episode / 'goal.png'), frames


class Chain:
    """One configuration's episode: queries built as the engine builds them for a valid chain.

    Not the engine itself: the random model's answers never parse, so the engine would hold
    every step, keep BEFORE at START and send the then identical incremental and forward
    queries once, a 2-query step.
    """

    def __init__(self, backend: TransformersBackend, clock: Clock, modes: tuple[Mode, ...],
                 goal: np.ndarray) -> None:
        self.backend, self.clock, self.modes = backend, clock, modes
        self.limits = backend.config.pixel_limits
        self.goal = KeyedImage(ImageKey('bench', 'goal', 0), prepare(goal, self.limits))
        self.first: tuple[KeyedImage, ...] = ()
        self.prev: tuple[KeyedImage, ...] = ()
        self.answers: list[Answer] = []
        if backend.vision_cache is not None:
            backend.reset_cache()  # each chain is a new episode, as on the robot

    def step(self, i: int, frames: list[np.ndarray]) -> dict[str, float] | None:
        """Score sample ``i``; its wall time and phases (None for START, which asks nothing)."""
        self.clock.reset()
        self.clock.sync()
        t0 = time.perf_counter()
        views = tuple(KeyedImage(ImageKey('bench', role, i), prepare(f, self.limits))
                      for role, f in zip(('front', 'left', 'right'), frames, strict=True))
        if not self.first:
            self.first = self.prev = views
            return None
        goal = self.goal
        befores = {Mode.INCREMENTAL: self.prev, Mode.FORWARD: self.first,
                   Mode.BACKWARD: (goal, goal, goal)}
        queries = [Query(TASK, (self.first[0], goal, *befores[m], *views), m)
                   for m in self.modes]
        answers = self.backend.generate(queries)
        self.clock.sync()
        wall = time.perf_counter() - t0
        assert len(answers) == len(queries) and not any(a.error for a in answers)
        self.prev, self.answers = views, answers
        return {'step': wall, **split(wall, self.clock.totals)}


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def prefix_share(backend: TransformersBackend) -> tuple[int, int]:
    """(shared prefix tokens, prompt tokens) of a demo query: all before the BEFORE image."""
    episode = demo_episode_dir()
    limits = backend.config.pixel_limits
    sources = [open_frames(episode / c) for c in CAMERAS]
    try:
        views = [KeyedImage(ImageKey('demo', c, 0), prepare(s.read(0), limits))
                 for c, s in zip(CAMERAS, sources, strict=True)]
    finally:
        for s in sources:
            s.close()
    goal = KeyedImage(ImageKey('demo', 'goal', 0),
                      prepare(read_image(episode / 'goal.png'), limits))
    query = Query(TASK, (views[0], goal, *views, *views), Mode.FORWARD)
    ids = backend.build_inputs([query])['input_ids'][0].tolist()
    starts = [i for i, t in enumerate(ids) if t == VISION_START]
    return starts[2], len(ids)


def build_model(args: argparse.Namespace, tmp: Path, arch: str | None) -> Path:
    if args.model:
        return Path(args.model)
    return random_grm_dir(tmp, str(arch), tiny=not args.real_dims)


def measure(args: argparse.Namespace, model: Path, sync: Callable[[], None],
            limits: PixelLimits, backend_class: type[TransformersBackend] = TransformersBackend,
            ) -> tuple[dict[str, dict[str, float]], tuple[int, int], tuple[int, int]]:
    """Median step and phases of the three configurations, prefix share, cache hits/misses.

    The configurations take turns step by step, so a change in the machine's load (shared
    cores) falls on all of them alike.
    """
    goal, frames = demo_frames(args.steps)
    backends, clocks = [], []
    for cached in (False, True):
        backend = backend_class(TransformersConfig(model=str(model), device=args.device,
                                                   vision_cache=cached, pixel_limits=limits))
        clocks.append(Clock(sync))
        instrument(backend, clocks[-1])
        backends.append(backend)
    plain, cached_backend = backends
    share = prefix_share(plain)
    for backend, clock in zip(backends, clocks, strict=True):  # warm-up
        warm = Chain(backend, clock, ALL_MODES, goal)
        for i in range(3):
            warm.step(i, frames[i])
    chains = {'single': Chain(plain, clocks[0], (Mode.INCREMENTAL,), goal),
              'fused, no cache': Chain(plain, clocks[0], ALL_MODES, goal),
              'fused, cache': Chain(cached_backend, clocks[1], ALL_MODES, goal)}
    cache = cached_backend.vision_cache
    assert cache is not None
    before = (cache.hits, cache.misses)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in chains}
    for i, step_frames in enumerate(frames):
        for name, chain in chains.items():
            row = chain.step(i, step_frames)
            if row is not None:
                rows[name].append(row)
    hits = (cache.hits - before[0], cache.misses - before[1])
    for backend in backends:
        backend.close()
    return {name: medians(r) for name, r in rows.items()}, share, hits


def report(args: argparse.Namespace, arch: str, limits: PixelLimits,
           results: dict[str, dict[str, float]], share: tuple[int, int], hits: tuple[int, int],
           ratios: list[tuple[float, float]]) -> list[str]:
    """One architecture's section of the report."""
    single = results['single']['step']
    fused, fused_cache = results['fused, no cache']['step'], results['fused, cache']['step']
    frac = share[0] / share[1]
    bound = frac * results['fused, cache']['prefill']
    what = (f'random-weight {arch} real dimensions, bfloat16' if args.real_dims
            else f'tiny random {arch} GRM (float32)' if not args.model
            else f'model {args.model}')
    h, w = resize_to(240, 320, limits)
    lines = [
        f'## {arch}',
        '',
        f'Model: {what}. Demo episode, 3 cameras 320x240 -> {h}x{w} at factor '
        f'{limits.factor} ({visual_tokens(240, 320, limits)} visual tokens each), {args.steps} '
        'steps per configuration, medians; the table is the run of median ratio.',
        '',
        '| configuration | step, ms | ratio to single | ' + ' | '.join(
            f'{p}, ms' for p in PHASES) + ' |',
        '|---|---|---|' + '---|' * len(PHASES),
    ]
    for name, r in results.items():
        cells = [f'{r["step"] * 1e3:.1f}', f'{r["step"] / single:.2f}',
                 *(f'{r[p] * 1e3:.1f}' for p in PHASES)]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += [
        '',
        f'**Ratio fused/single: {fused_cache / single:.2f} with the vision cache, '
        f'{fused / single:.2f} without** (3 separate queries: 3.00; goal: at most 2.00). '
        f'All {len(ratios)} runs, with / without: '
        + ', '.join(f'{c:.2f} / {n:.2f}' for c, n in ratios) + '.',
        '',
        'Share of the fused step with cache: ' + ', '.join(
            f'{p} {100 * results["fused, cache"][p] / fused_cache:.0f}%' for p in PHASES) + '.',
        '',
        f'Vision cache over the fused run: {hits[0]} images served from the cache, {hits[1]} '
        'encoded (3 new views per step once START, goal and the previous views are cached).',
        '',
        f'Shared prompt prefix (system line, prompt head, REF START, REF END, text up to the '
        f'first BEFORE image): {share[0]} of {share[1]} prompt tokens ({100 * frac:.0f}%). No '
        'prefix key/value cache is used; at most it would skip that share of the prefill, about '
        f'{bound * 1e3:.0f} ms of the fused step here (ratio {(fused_cache - bound) / single:.2f} '
        f'instead of {fused_cache / single:.2f}).',
        '',
        'Phases: vision = `model.visual` (the tower; with the cache, only for images not seen '
        'before); prefill = the first model forward (language model over the prompt); decode '
        '= the later forwards; processor = image preprocessing and tokenisation; generate_loop = '
        "`generate`'s own work around them (logits processors, the `</score>` stop criteria, "
        'cache lookups); ours = the rest of the step (resizing the new views, building the '
        'queries, digests and hints, decoding the answers).',
        '',
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=12)
    parser.add_argument('--runs', type=int, default=3,
                        help='whole measurements; the table is the run of median ratio')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (1: steady timings on small shared machines)')
    parser.add_argument('--real-dims', action='store_true',
                        help='random model of the real GRM-3B dimensions (needs a GPU)')
    parser.add_argument('--model', help='an existing checkpoint directory instead')
    parser.add_argument('--arch', action='append', choices=SUPPORTED_ARCHITECTURES,
                        help='architecture to measure (repeatable; default: all)')
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    lines = [
        '# Step cost: fused step vs one single-mode query',
        '',
        'Command: `' + ' '.join(['python', 'bench/step_cost.py', *sys.argv[1:]]) + '`',
        '',
        f'Machine: {os.cpu_count()} CPUs ({platform.machine()}), device {args.device}, '
        f'torch {torch.__version__} with {torch.get_num_threads()} thread(s), Python '
        f'{platform.python_version()}, {datetime.date.today()}.',
        '',
    ]
    archs = [None] if args.model else (args.arch or list(SUPPORTED_ARCHITECTURES))
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            model = build_model(args, Path(tmp), arch)
            profile = backend_profile('transformers', str(model))
            backend = RandomInitBackend if args.real_dims else TransformersBackend
            runs = [measure(args, model, sync, profile.pixel_limits, backend)
                    for _ in range(args.runs)]
            ratios = sorted((r['fused, cache']['step'] / r['single']['step'],
                             r['fused, no cache']['step'] / r['single']['step'])
                            for r, _, _ in runs)
            results, share, hits = sorted(runs, key=lambda run: run[0]['fused, cache']['step']
                                          / run[0]['single']['step'])[len(runs) // 2]
            lines += report(args, profile.architecture, profile.pixel_limits, results, share,
                            hits, ratios)
    text = '\n'.join([*lines, NOTES])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists() and SECTION_PREFILL in (old := args.out.read_text()):
        text += '\n' + SECTION_PREFILL + old.split(SECTION_PREFILL, 1)[1]
    args.out.write_text(text)
    print(text)


if __name__ == '__main__':
    main()
