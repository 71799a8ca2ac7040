"""Step 1: hop-labelled training samples per episode (upstream ``1_generate_data``,
docs/upstream.md §8.3).

For an episode with ``n`` sampled frames at positions ``0 .. n-1`` (progress ``Φ(i) = i/(n-1)``,
each sub-task worth the same), a pair (BEFORE ``i``, AFTER ``j``) is labelled with the hop of
docs/upstream.md §5.1: ``(j-i)/(n-1-i)`` forward, ``(j-i)/i`` backward, in percent with one decimal
and a sign (``<score>+66.7%</score>``). Pairs are drawn uniformly, bucketed into score bins over
[-100, 100] and, inside each, gap bins over ``|i-j|``; per-bin quotas then give a dataset
balanced over hop size and temporal distance. A ``zero_ratio`` share are zero-hop pairs whose
AFTER frame is a few raw frames from BEFORE, labelled ``<score>0.0%</score>``.

Determinism: upstream seeds with Python's per-process randomised ``hash(name)`` and also uses
the global RNG, so no two runs agree. Here each episode gets a numpy ``Generator`` seeded from
``(seed, crc32(name))``: the output depends only on the seed and the data, not on the number of
workers or the order they finish in.
"""

from __future__ import annotations

import functools
import itertools
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.names import TASK_FILE, UPSTREAM_CAMERAS
from ..core.prompt import PromptVariant, render_prompt
from ..files.outputs import write_json
from .keyframes import load_instructions, read_json, zero_hop_afters
from .layout import (
    INFO_FILE,
    SAMPLE_FRAMES_FILE,
    TRAIN_FILE,
    episode_dirs,
    frame_id,
    frame_name,
    map_episodes,
)
from .preprocess import MIN_SAMPLE_FRAMES

log = logging.getLogger(__name__)

#: Upstream's cap on the candidate pool per episode.
POOL_CAP = 100_000
#: The label of zero-hop samples (upstream writes it without a sign).
ZERO_LABEL = '<score>0.0%</score>'


@dataclass(frozen=True, kw_only=True)
class GenerateConfig:
    """Step 1 settings (upstream's flags and defaults, plus ``seed`` now meaning something).

    Attributes:
        max_sample_num: Samples per episode, zero-hop ones included.
        seed: Base seed; with the episode name it seeds the episode's generator.
        score_bins: Hop bins over [-100, 100] %.
        gap_bins: Bins of ``|i - j|`` inside each score bin.
        oversample_factor: Candidate pool size per wanted sample (capped at 100,000 pairs).
        zero_ratio: Share of zero-hop samples.
        image_prefix: First component of the image paths in the records; ``None`` is the
            dataset directory's name (upstream hard-codes ``train_data``), so paths resolve
            against the dataset's parent directory.
        workers: Parallel processes (``None``: one per CPU).
        progress: Show a progress bar.
    """

    max_sample_num: int = 1000
    seed: int = 1234
    score_bins: int = 25
    gap_bins: int = 4
    oversample_factor: int = 100
    zero_ratio: float = 0.05
    image_prefix: str | None = None
    workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ('max_sample_num', 'score_bins', 'gap_bins', 'oversample_factor'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f'{name} must be a positive integer, got {value!r}')
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f'seed must be a non-negative integer, got {self.seed!r}')
        if not 0.0 <= self.zero_ratio <= 1.0:
            raise ConfigError(f'zero_ratio must be in [0, 1], got {self.zero_ratio!r}')


@dataclass(frozen=True)
class EpisodeSamples:
    """Step 1's result for one episode."""

    name: str
    records: list[dict[str, Any]] = field(repr=False)
    pairs: list[tuple[int, int]] = field(repr=False)
    zero_count: int = 0


def episode_rng(seed: int, name: str) -> np.random.Generator:
    """The episode's generator: a stable function of the seed and the name (never ``hash``)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode('utf-8'))])


def hop_percent(before: int, after: int, n: int) -> float:
    """The ground-truth hop from position ``before`` to ``after`` of ``n``, in percent
    (docs/upstream.md §5.1).

    Computed as upstream does (``100 * Δ / denominator``), which matters: the mathematically
    equal ``100 * (Δ / denominator)`` rounds differently at one decimal for ~1 % of pairs.
    """
    if after == before:
        return 0.0
    denominator = (n - 1 - before) if after > before else before
    return 100.0 * (after - before) / denominator


def score_label(percent: float) -> str:
    """Upstream's training answer: one decimal, explicit sign (``<score>-66.7%</score>``).

    ``core.parsing.format_score`` formats a hop fraction; it cannot be used here because
    scaling the fraction back to percent changes the rounding (see :func:`hop_percent`).
    """
    return f'<score>{percent:+.1f}%</score>'


def score_bin(percent: float, bins: int) -> int:
    """Index of the score bin of ``percent``: ``bins`` equal bins over [-100, 100], the last
    one closed."""
    clipped = min(100.0, max(-100.0, percent))
    return min(bins - 1, int((clipped + 100.0) // (200.0 / bins)))


def gap_bin(gap: int, max_gap: int, bins: int) -> int:
    """Index of the gap bin of ``gap``: ``bins`` equal bins over [1, ``max_gap``] (the full
    span ``n - 1`` shares the last bin)."""
    gap = min(max_gap, max(1, gap))
    return min(bins - 1, int((gap - 1) // (max_gap / bins)))


def score_quotas(total: int, bins: int) -> list[int]:
    """Samples per score bin: an equal share, the remainder to the bins nearest the centre
    (small hops, the ones a policy sees most), lower bin first on ties."""
    quotas = [total // bins] * bins
    for k in centre_first(bins)[:total - sum(quotas)]:
        quotas[k] += 1
    return quotas


def centre_first(bins: int) -> list[int]:
    """Score bin indices ordered by distance from the centre bin, lower index first on ties."""
    centre = (bins - 1) / 2.0
    return sorted(range(bins), key=lambda k: (abs(k - centre), k))


def gap_quotas(total: int, sizes: Sequence[int]) -> list[int]:
    """Samples per gap bin of one score bin: an equal share, the remainder to the fullest
    bins, lower bin first on ties."""
    bins = len(sizes)
    quotas = [total // bins] * bins
    for g in sorted(range(bins), key=lambda g: (-sizes[g], g))[:total - sum(quotas)]:
        quotas[g] += 1
    return quotas


def candidate_pairs(n: int, want: int, oversample_factor: int,
                    rng: np.random.Generator) -> list[tuple[int, int]]:
    """Distinct ordered pairs ``(i, j)``, ``i != j``, drawn uniformly, in random order.

    The pool holds ``min(100000, want * max(oversample_factor, 10))`` pairs, or every pair when
    the episode has fewer (upstream's rejection sampling reaches the same pool, slowly).
    """
    total = n * (n - 1)
    target = min(POOL_CAP, want * max(oversample_factor, 10))
    codes = rng.permutation(total) if target >= total else rng.choice(total, target,
                                                                       replace=False)
    i, r = np.divmod(codes, n - 1)
    j = np.where(r < i, r, r + 1)
    return list(zip(i.tolist(), j.tolist(), strict=True))


def select_pairs(pairs: Sequence[tuple[int, int]], n: int, m: int, score_bins: int,
                 gap_bins: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Pick ``m`` pairs balanced over score bins, then over gap bins inside each.

    Each (score, gap) bucket keeps the pool's random order, so taking from its front is a
    uniform draw. Bins with too few candidates leave a deficit, filled from any gap bin of
    the score bins nearest the centre first (upstream's order).

    Returns:
        Up to ``m`` distinct pairs (fewer only if the pool is smaller than ``m``).
    """
    max_gap = n - 2
    buckets: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, j in pairs:
        key = (score_bin(hop_percent(i, j, n), score_bins), gap_bin(abs(i - j), max_gap,
                                                                  gap_bins))
        buckets.setdefault(key, []).append((i, j))

    def take(key: tuple[int, int], count: int) -> list[tuple[int, int]]:
        bucket = buckets.get(key, [])
        taken, buckets[key] = bucket[:count], bucket[count:]
        return taken

    selected: list[tuple[int, int]] = []
    for s, quota in enumerate(score_quotas(m, score_bins)):
        sizes = [len(buckets.get((s, g), [])) for g in range(gap_bins)]
        for g, need in enumerate(gap_quotas(quota, sizes)):
            selected += take((s, g), need)
    for s in centre_first(score_bins):
        for g in rng.permutation(gap_bins).tolist():
            selected += take((s, g), m - len(selected))
    return selected


def zero_pairs(ids: Sequence[int], count: int,
               rng: np.random.Generator) -> list[tuple[int, int]]:
    """``count`` zero-hop (BEFORE, AFTER) frame pairs: a random sampled frame and one of its
    two near neighbours (:func:`keyframes.zero_hop_afters`), each side with probability 1/2."""
    afters = zero_hop_afters(ids)
    out = []
    for _ in range(count):
        k = int(rng.integers(len(ids)))
        out.append((ids[k], afters[k][1] if rng.random() < 0.5 else afters[k][0]))
    return out


def image_paths(prefix: str, episode: str, first: int, last: int, before: int,
                after: int) -> list[str]:
    """The 8 image paths of a record in slot order: REF START and REF END (front camera, first
    and last sampled frame), then BEFORE and AFTER in every camera."""
    front = UPSTREAM_CAMERAS[0]
    paths = [f'{prefix}/{episode}/{front}/{frame_name(first)}',
             f'{prefix}/{episode}/{front}/{frame_name(last)}']
    for frame in (before, after):
        paths += [f'{prefix}/{episode}/{cam}/{frame_name(frame)}' for cam in UPSTREAM_CAMERAS]
    return paths


def episode_samples(name: str, ids: Sequence[int], instructions: Sequence[str],
                    config: GenerateConfig, prefix: str) -> EpisodeSamples:
    """All records of one episode, in upstream's JSON record format.

    Args:
        name: Episode directory name.
        ids: Its sampled frame ids (at least 3, increasing).
        instructions: Task paraphrases; each record draws one.
        config: Sample counts, bins and seed.
        prefix: First component of image paths and record ids.
    """
    rng = episode_rng(config.seed, name)
    n = len(ids)
    zero_n = round(config.max_sample_num * config.zero_ratio)
    nonzero_m = config.max_sample_num - zero_n
    pairs: list[tuple[int, int]] = []
    if nonzero_m:
        pool = candidate_pairs(n, nonzero_m, config.oversample_factor, rng)
        pairs = select_pairs(pool, n, nonzero_m, config.score_bins, config.gap_bins, rng)
    samples: list[tuple[int, int, float | None]] = [
        (ids[i], ids[j], hop_percent(i, j, n)) for i, j in pairs]
    samples += [(before, after, None) for before, after in zero_pairs(ids, zero_n, rng)]
    records = []
    for counter, (before, after, percent) in enumerate(samples):
        tag = 'zero_extra' if percent is None else 'plus' if percent > 0 else 'minus'
        label = ZERO_LABEL if percent is None else score_label(percent)
        task = instructions[int(rng.integers(len(instructions)))]
        records.append({
            'id': (f'{prefix}_{name}-train-bf_{frame_id(before)}-af_{frame_id(after)}-{tag}-'
                   f'{counter:07d}'),
            'image': image_paths(prefix, name, ids[0], ids[-1], before, after),
            'task': task,
            'conversations': [
                {'value': render_prompt(task, PromptVariant.TRAINING), 'from': 'human'},
                {'value': label, 'from': 'gpt'},
            ],
        })
    return EpisodeSamples(name, records, pairs, zero_n)


def info_text(samples: EpisodeSamples, n: int, config: GenerateConfig) -> str:
    """Upstream's ``info.txt``: the score histogram, and the gap histogram inside each bin."""
    bins, gaps = config.score_bins, config.gap_bins
    hist = np.zeros((bins, gaps), dtype=int)
    for i, j in samples.pairs:
        hist[score_bin(hop_percent(i, j, n), bins), gap_bin(abs(i - j), n - 2, gaps)] += 1
    total = len(samples.pairs)
    width = 200.0 / bins
    lines = [f'Episode: {samples.name}', f'Frames (id_list) count: {n}',
             f'Samples: non-zero={total}, zero={samples.zero_count}, '
             f'total={total + samples.zero_count}', '',
             f'[Score bins] (bins={bins}, range per bin on [-100,100])']
    for k, count in enumerate(hist.sum(axis=1).tolist()):
        low, high = round(-100 + k * width, 2), round(-100 + (k + 1) * width, 2)
        span = f'[{low}, {high}' + (']' if k == bins - 1 else ')')
        lines.append(f'  - bin {k:02d} {span}: {count} ({100.0 * count / max(1, total):.2f}%)')
    lines += ['', f'[Gap bins INSIDE each score bin] (gap_bins={gaps}, gaps uniformly split on '
                  '[1, max_gap])']
    for k, row in enumerate(hist.tolist()):
        if sum(row):
            lines.append(f'  · score bin {k:02d} -> {sum(row)} samples:')
            lines += [f'      gap bin {g}: {c} ({100.0 * c / sum(row):.2f}%)'
                      for g, c in enumerate(row)]
    return '\n'.join(lines) + '\n'


def generate(base: Path, config: GenerateConfig, output: Path | None = None) -> dict[str, int]:
    """Write ``train.json`` and ``info.txt`` in every episode of a converted dataset.

    Args:
        base: The converted dataset (step 0's output).
        config: Step 1 settings.
        output: Optionally also write all records, merged in episode order, to this file.

    Returns:
        Episode name -> number of records (0 for an episode skipped for too few frames).

    Raises:
        ConfigError: No episodes, or a malformed ``sample_frames.json``/instructions file.
    """
    dirs = episode_dirs(base)
    prefix = config.image_prefix or base.name
    counts = map_episodes(functools.partial(_generate_episode, config=config, prefix=prefix),
                          dirs, config.workers, 'generate', config.progress)
    if output is not None:
        merged = []
        for ep_dir, count in zip(dirs, counts, strict=True):
            if count:
                merged += read_json(ep_dir / TRAIN_FILE)
        write_json(output, merged)
    return {d.name: c for d, c in zip(dirs, counts, strict=True)}


def _generate_episode(ep_dir: Path, config: GenerateConfig, prefix: str) -> int:
    """Step 1 for one episode (runs in a worker process); returns the record count."""
    ids = _load_ids(ep_dir / SAMPLE_FRAMES_FILE)
    if len(ids) < MIN_SAMPLE_FRAMES:
        log.warning('%s: skipped, only %d sampled frames (need %d)', ep_dir.name, len(ids),
                    MIN_SAMPLE_FRAMES)
        (ep_dir / TRAIN_FILE).unlink(missing_ok=True)  # never merge a stale one in step 2
        return 0
    instructions = load_instructions([ep_dir / TASK_FILE,
                                      ep_dir.parent / TASK_FILE])
    samples = episode_samples(ep_dir.name, ids, instructions, config, prefix)
    write_json(ep_dir / TRAIN_FILE, samples.records)
    (ep_dir / INFO_FILE).write_text(info_text(samples, len(ids), config), encoding='utf-8')
    return len(samples.records)


def _load_ids(path: Path) -> list[int]:
    """``sample_frames.json``: increasing frame ids as digit strings (upstream) or integers."""
    data = read_json(path)
    try:
        ids = [int(v) for v in data] if isinstance(data, list) else None
    except (TypeError, ValueError):
        ids = None
    if ids is None:
        raise ConfigError(f'{str(path)!r} must be a list of frame ids, got {data!r:.80}')
    if any(b <= a for a, b in itertools.pairwise(ids)):
        raise ConfigError(f'{str(path)!r}: frame ids must strictly increase')
    return ids
