"""Feature statistics as LeRobot stores them: ``meta/stats.json`` and per-episode ``stats/…``.

LeRobot (``datasets/compute_stats.py``) keeps, per feature, ``min``, ``max``, ``mean``, ``std``,
``count`` and the quantiles ``q01 q10 q50 q90 q99``; a scalar or vector feature has one value per
dimension, a video/image feature one per channel shaped ``(3, 1, 1)`` on pixels scaled to
``[0, 1]``, and ``count`` is always ``[frames]``. ``meta/stats.json`` holds the dataset's,
each ``meta/episodes`` row the episode's as columns ``stats/<feature>/<stat>``. Quantiles are
exact here (LeRobot estimates them from histograms); booleans count as 0/1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STAT_NAMES = ('min', 'max', 'mean', 'std', 'count',
              *(f'q{round(q * 100):02d}' for q in QUANTILES))


def feature_stats(values: np.ndarray, *, image: bool = False) -> dict[str, Any]:
    """One feature's statistics as JSON-ready nested lists.

    ``values``: ``(frames,)`` or ``(frames, dims)`` for a vector feature, ``(frames, h, w, 3)``
    uint8 RGB for an image/video feature.
    """
    frames = len(values)
    if image:
        flat = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0
    else:
        flat = np.asarray(values, dtype=np.float64).reshape(frames, -1)
    stats = {'min': flat.min(axis=0), 'max': flat.max(axis=0), 'mean': flat.mean(axis=0),
             'std': flat.std(axis=0)}
    for q, name in zip(QUANTILES, STAT_NAMES[5:], strict=True):
        stats[name] = np.quantile(flat, q, axis=0)
    out: dict[str, Any] = {k: (v.reshape(-1, 1, 1) if image else v).tolist()
                           for k, v in stats.items()}
    out['count'] = [frames]
    return {name: out[name] for name in STAT_NAMES}


def episode_stat_columns(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{feature: stats}`` flattened to ``meta/episodes`` columns ``stats/<feature>/<stat>``."""
    return {f'stats/{key}/{name}': value for key, per in stats.items()
            for name, value in per.items()}
