"""The results plot: fused and per-mode progress, hops and shaped reward over time (PNG)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.types import ALL_MODES
from ..files.outputs import written


def _series(records: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [math.nan if r.get(key) is None else float(r[key]) for r in records]


def plot_results(records: Sequence[dict[str, Any]], path: str | Path, title: str = '') -> Path:
    """Write a three-panel PNG (progress, hops, reward vs seconds since the first sample).

    Invalid samples are drawn hollow in red, so a flagged value is never mistaken for a good one.
    Records with a ``gt_progress`` (bag replay with labels) also get the ground-truth curve.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if not records:
        raise ValueError('no records to plot')
    t0 = records[0]['stamp_after_ns']
    t = [(r['stamp_after_ns'] - t0) / 1e9 for r in records]
    fig, (ax_p, ax_h, ax_r) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    ax_p.plot(t, _series(records, 'progress'), 'k-', lw=2, label='fused')
    truth = _series(records, 'gt_progress')
    if not all(math.isnan(v) for v in truth):
        ax_p.plot(t, truth, ':', color='tab:green', lw=2, label='ground truth')
    for mode in ALL_MODES:
        values = _series(records, f'{mode.value}_progress')
        if not all(math.isnan(v) for v in values):
            ax_p.plot(t, values, '--', lw=1, label=mode.value)
        hops = _series(records, f'{mode.value}_hop')
        if not all(math.isnan(v) for v in hops):
            ax_h.plot(t, hops, '.-', lw=1, label=mode.value)
    bad = [(ti, r['progress']) for ti, r in zip(t, records, strict=True) if not r['valid']]
    if bad:
        ax_p.scatter(*zip(*bad, strict=True), facecolors='none', edgecolors='r', s=40,
                     label='invalid', zorder=3)
    ax_p.set_ylim(-0.05, 1.05)
    ax_p.set_ylabel('progress Φ')
    ax_p.legend(loc='upper left', fontsize=8)
    ax_h.axhline(0, color='grey', lw=0.5)
    ax_h.set_ylim(-1.05, 1.05)
    ax_h.set_ylabel('hop')
    ax_r.bar(t, [0.0 if math.isnan(v) else v for v in _series(records, 'reward')],
             width=0.6 * (t[1] - t[0]) if len(t) > 1 else 0.5,
             color=['tab:green' if r['valid'] else 'tab:red' for r in records])
    ax_r.set_ylabel('shaped reward')
    ax_r.set_xlabel('time since first sample [s]')
    fig.suptitle(title or str(records[0].get('task', '')))
    fig.tight_layout()
    out = Path(path)
    try:
        with written(out) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return out
