"""Benchmark: the offline episode pipeline against an upstream-style run on the same frames.

Question answered: how much faster is ``robo-dopamine episode --mode all`` than scoring an
episode the way upstream's ``run_pipeline`` does, for the same three modes?

* **ours**: :func:`run_episode` with ``mode=all``: one pass over the sampled frames, kept in
  memory; each step's incremental, forward and backward queries go to the backend as one batch
  (identical queries asked once); all three upstream chains and the fusion come from that pass.
  ``upstream_zero`` as upstream: the random model's unparseable answers read as hop 0, so the
  incremental BEFORE advances every step and each step asks all three queries, as a real model's
  would (a held step would re-ask the START pair, which the engine then asks once).
* **upstream-style baseline**, written here for the benchmark after docs/upstream.md §4.1: one pass
  per mode; each pass seeks and decodes every sampled frame of the three videos, writes it as PNG
  (compression 3) to a cache folder and reads it back with PIL, then asks the model one query per
  call (``batch_size=1``, upstream's default), with no image cache (fresh image keys per call).

Both use the same model (the tiny random-weight GRM of the real Qwen2.5-VL class, built offline
with ``build_tiny_grm``), the same backend and the same image preparation, so the difference is
the pipeline's structure. Times are wall clock, best of ``--repeats`` runs each, alternated.

Usage: ``. scripts/env.sh && python bench/offline_pipeline.py [--frame-interval 10]
[--device cpu] [--repeats 2]``. Writes ``bench/results/offline_pipeline.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
from robo_dopamine_ros.backends.transformers_config import TransformersConfig
from robo_dopamine_ros.core.images import prepare
from robo_dopamine_ros.core.names import UPSTREAM_CAMERAS
from robo_dopamine_ros.core.parsing import parse_score
from robo_dopamine_ros.core.profiles import GENERIC
from robo_dopamine_ros.core.sampling import frame_interval_indices
from robo_dopamine_ros.core.types import ALL_MODES, ImageKey, KeyedImage, Mode, Query
from robo_dopamine_ros.files.frames import demo_episode_dir
from robo_dopamine_ros.models.tiny_grm import build_tiny_grm
from robo_dopamine_ros.offline.episode import EpisodeInputs, EpisodeOptions, run_episode

TASK = 'organize the table'
OUT = Path(__file__).resolve().parent / 'results' / 'offline_pipeline.md'


@dataclass
class Timing:
    """One run: wall time, the part spent in the backend, model calls and queries."""

    wall_s: float
    model_s: float
    calls: int
    queries: int


class _Counting:
    """Wraps a backend to count calls and queries and time them."""

    def __init__(self, backend: TransformersBackend) -> None:
        self.backend = backend
        self.model_id = backend.model_id
        self.calls = self.queries = 0
        self.seconds = 0.0

    def generate(self, queries: list[Query]) -> list:
        t0 = time.perf_counter()
        answers = self.backend.generate(queries)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.queries += len(queries)
        return answers

    def request_stop(self) -> None:
        self.backend.request_stop()

    def close(self) -> None:
        """The wrapped backend is shared between runs; the caller closes it."""


def run_ours(backend: TransformersBackend, episode: Path, interval: int, out: Path) -> Timing:
    counting = _Counting(backend)
    inputs = EpisodeInputs(episode / 'cam_high.mp4', TASK, episode / 'cam_left_wrist.mp4',
                           episode / 'cam_right_wrist.mp4', episode / 'goal.png')
    t0 = time.perf_counter()
    run_episode(counting, GENERIC, inputs,  # type: ignore[arg-type]
                EpisodeOptions(out_root=out, frame_interval=interval, mode='all',
                               upstream_zero=True))
    return Timing(time.perf_counter() - t0, counting.seconds, counting.calls, counting.queries)


def _extract(video: Path, indices: list[int], folder: Path) -> list[Path]:
    """Upstream's frame cache: seek, read (one retry), write ``frame_XXXXXX.png``."""
    folder.mkdir(parents=True)
    cap = cv2.VideoCapture(str(video))
    paths = []
    for idx in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
        ok, frame = cap.read()
        if not ok:
            ok, frame = cap.read()
        path = folder / f'frame_{idx:06d}.png'
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        paths.append(path)
    cap.release()
    return paths


def run_baseline(backend: TransformersBackend, episode: Path, interval: int,
                 out: Path) -> Timing:
    """Three ``run_pipeline``-style passes, one per mode (docs/upstream.md §4.1)."""
    counting = _Counting(backend)
    t0 = time.perf_counter()
    for pass_no, mode in enumerate(ALL_MODES):
        cache = out / f'pass-{mode.value}' / '.cache'
        indices = frame_interval_indices(_frame_count(episode / 'cam_high.mp4'), interval)
        frames = {cam: _extract(episode / f'{cam}.mp4', indices, cache / cam)
                  for cam in UPSTREAM_CAMERAS}
        goal = cache / 'ref_end.png'
        goal.write_bytes((episode / 'goal.png').read_bytes())
        prev = 0.0
        for k in range(len(indices) - 1):
            call = f'baseline-{pass_no}-{k}'          # fresh keys: every image encoded anew
            ref_start = _image(frames['cam_high'][0], call, 'start')
            ref_end = _image(goal, call, 'goal')
            if mode is Mode.BACKWARD:
                before = [_image(goal, call, 'goal')] * 3
            else:
                at = 0 if mode is Mode.FORWARD else k
                before = [_image(frames[cam][at], call, cam) for cam in UPSTREAM_CAMERAS]
            after = [_image(frames[cam][k + 1], call, cam) for cam in UPSTREAM_CAMERAS]
            query = Query(TASK, (ref_start, ref_end, *before, *after), mode)
            text = counting.generate([query])[0].text
            hop = parse_score(text).hop or 0.0            # upstream: unparseable reads as 0
            prev = _upstream_progress(mode, k, prev, hop)
    return Timing(time.perf_counter() - t0, counting.seconds, counting.calls, counting.queries)


def _image(path: Path, call: str, role: str) -> KeyedImage:
    """Read a cached PNG with PIL, as upstream, and resize it as the model expects."""
    with Image.open(path) as im:
        pixels = np.asarray(im.convert('RGB'))
    return KeyedImage(ImageKey(call, role, 0), prepare(pixels, GENERIC.pixel_limits))


def _frame_count(video: Path) -> int:
    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def _upstream_progress(mode: Mode, k: int, prev: float, s: float) -> float:
    """docs/upstream.md §4.1 item 8, per mode (no clamp)."""
    if mode is Mode.FORWARD:
        return s
    if mode is Mode.BACKWARD:
        return 1.0 + s
    if k == 0:
        return s
    return prev + (1.0 - prev) * s if s >= 0 else prev + prev * s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--frame-interval', type=int, default=10)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--out', type=Path, default=OUT)
    args = parser.parse_args()
    episode = demo_episode_dir()
    ours: list[Timing] = []
    base: list[Timing] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_grm(Path(tmp) / 'tiny', vocab='qwen')
        backend = TransformersBackend(TransformersConfig(model=str(model), device=args.device))
        run_ours(backend, episode, 40, Path(tmp) / 'warm')                 # warm-up
        for r in range(args.repeats):
            ours.append(run_ours(backend, episode, args.frame_interval, Path(tmp) / f'ours{r}'))
            base.append(run_baseline(backend, episode, args.frame_interval,
                                     Path(tmp) / f'base{r}'))
        backend.close()
    best_ours = min(ours, key=lambda t: t.wall_s)
    best_base = min(base, key=lambda t: t.wall_s)
    n = len(frame_interval_indices(_frame_count(episode / 'cam_high.mp4'), args.frame_interval))
    cache = getattr(backend.config, 'vision_cache', None)
    rows = [('wall time, s', best_ours.wall_s, best_base.wall_s),
            ('  in the backend, s', best_ours.model_s, best_base.model_s),
            ('  elsewhere (frames, PNG, prompts, files), s', best_ours.wall_s - best_ours.model_s,
             best_base.wall_s - best_base.model_s),
            ('backend calls', best_ours.calls, best_base.calls),
            ('queries', best_ours.queries, best_base.queries)]
    lines = [
        '# Offline episode pipeline vs an upstream-style run (tiny GRM)', '',
        f'Command: `python bench/offline_pipeline.py --frame-interval {args.frame_interval} '
        f'--device {args.device} --repeats {args.repeats}` (after `. scripts/env.sh`)', '',
        f'Machine: {os.cpu_count()} CPUs ({platform.machine()}), Python '
        f'{platform.python_version()}, {time.strftime("%Y-%m-%d")}. Bundled demo episode '
        f'(3 cameras, 86 frames, 320x240), frame interval {args.frame_interval}: {n} samples, '
        f'{n - 1} transitions, all three modes. Tiny random-weight GRM (real Qwen2.5-VL class, '
        f'Qwen tokenizer) on {args.device}; transformers backend'
        + ('' if cache is None else f' (vision cache {"on" if cache else "off"}; the baseline '
                                    'uses fresh image keys, so it never hits the cache)')
        + f'. Best of {args.repeats} alternated runs each.', '',
        '| measure | ours (`episode --mode all`) | upstream-style (3 passes) |', '|---|---|---|',
        *(f'| {name} | {a:.2f} | {b:.2f} |' if isinstance(a, float)
          else f'| {name} | {a} | {b} |' for name, a, b in rows),
        '', f'**Speed-up (upstream-style / ours): {best_base.wall_s / best_ours.wall_s:.2f}x**',
        '', 'What differs: ours decodes each sampled frame once, keeps it in memory and sends a '
        "step's queries as one batch (the first step's incremental and forward queries are the "
        'same and asked once); the baseline decodes, writes and re-reads every sampled frame as '
        'PNG in each of its three passes and calls the model once per query, encoding every image '
        'anew. The model dominates both runs, so most of the gain is per query (batching, and '
        'images encoded once), not the PNG round trip. Not measured on a GPU (none in this '
        'run): try `--device cuda:0` there. Times on a shared machine vary from run to run.',
        '']
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text('\n'.join(lines), encoding='utf-8')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
