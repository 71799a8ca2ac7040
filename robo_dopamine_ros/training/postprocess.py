"""Step 2: merge, shuffle and anchor-swap the episodes' samples (upstream ``2_posprocess_data``).

The anchor swap replaces, with probability ``replace_prob``, a sample's REF START and REF END
images with those of another random sample (often another episode or task). The prompt says the
references are "not necessarily this run's actual START/END"; the swap is what teaches the GRM
to use them as loose anchors rather than as this episode's exact endpoints (docs/upstream.md §8.4).

Differences from upstream: the seed defaults to a fixed value (upstream: unseeded), episodes are
merged in name order (upstream: file-system order), and donors give their original anchors
(upstream swaps in place, so a donor that was itself swapped passes on borrowed anchors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..files.outputs import write_json
from .keyframes import read_json
from .layout import TRAIN_FILE, episode_dirs

log = logging.getLogger(__name__)

#: Where upstream writes the two files, relative to the dataset directory.
MERGED_FILE = Path('train_jsons/finetune_data_wo_replace.json')
FINAL_FILE = Path('train_jsons/finetune_data_final.json')


@dataclass(frozen=True)
class PostprocessConfig:
    """Step 2 settings.

    Attributes:
        replace_prob: Probability that a sample's two reference images are swapped.
        seed: Seed of the shuffle and the swap.
        merged_json: The shuffled, unswapped samples; default ``<dataset>/`` + ``MERGED_FILE``.
        final_json: The training file; default ``<dataset>/`` + ``FINAL_FILE``.
    """

    replace_prob: float = 0.75
    seed: int = 1234
    merged_json: Path | None = None
    final_json: Path | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.replace_prob <= 1.0:
            raise ConfigError(f'replace_prob must be in [0, 1], got {self.replace_prob!r}')
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f'seed must be a non-negative integer, got {self.seed!r}')


@dataclass(frozen=True)
class PostprocessStats:
    """What step 2 did."""

    total: int
    eligible: int
    replaced: int
    changed: int  # replacements that brought other anchors (one episode's are all the same)
    merged_json: Path
    final_json: Path


def postprocess(base: Path, config: PostprocessConfig) -> PostprocessStats:
    """Merge every ``episode_*/train.json`` of ``base``, shuffle, swap anchors, write both files.

    Raises:
        ConfigError: No episodes, no samples at all, or a ``train.json`` that is not a list.
    """
    items: list[dict[str, Any]] = []
    for ep_dir in episode_dirs(base):
        path = ep_dir / TRAIN_FILE
        if not path.is_file():
            log.warning('%s has no %s (run `robo-dopamine data generate`); skipped', ep_dir.name,
                        TRAIN_FILE)
            continue
        data = read_json(path)
        if not isinstance(data, list):
            raise ConfigError(f'{str(path)!r} must hold a list of samples')
        items += data
    if not items:
        raise ConfigError(f'no samples in {str(base)!r}; run `robo-dopamine data generate`')
    rng = np.random.default_rng(config.seed)
    items = [items[k] for k in rng.permutation(len(items)).tolist()]
    merged_json = config.merged_json or base / MERGED_FILE
    final_json = config.final_json or base / FINAL_FILE
    write_json(merged_json, items)
    final, eligible, replaced = swap_anchors(items, config.replace_prob, rng)
    write_json(final_json, final)
    changed = sum(a['image'][:2] != b['image'][:2] for a, b in zip(items, final, strict=True))
    return PostprocessStats(len(items), eligible, replaced, changed, merged_json, final_json)


def swap_anchors(items: list[dict[str, Any]], replace_prob: float,
                 rng: np.random.Generator) -> tuple[list[dict[str, Any]], int, int]:
    """Copies of ``items`` whose first two images were swapped with another sample's.

    Only samples with at least two images take part (as donors and as targets); each eligible
    sample draws once against ``replace_prob`` and, if it wins, a donor other than itself.

    Returns:
        The new items, the number of eligible items, and the number swapped.
    """
    donors = [k for k, item in enumerate(items)
              if isinstance(item.get('image'), list) and len(item['image']) >= 2]
    out = [dict(item) for item in items]
    replaced = 0
    if len(donors) < 2:
        return out, len(donors), 0
    for position, k in enumerate(donors):
        if rng.random() >= replace_prob:
            continue
        other = int(rng.integers(len(donors) - 1))
        donor = donors[other + (other >= position)]  # uniform over the donors except k
        out[k]['image'] = items[donor]['image'][:2] + items[k]['image'][2:]
        replaced += 1
    return out, len(donors), replaced
