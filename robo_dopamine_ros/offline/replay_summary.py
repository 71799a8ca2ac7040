"""Replay's end-of-run outputs: per-episode plots and ``summary.json`` of what was scored.

Kept apart from the replay loop because it runs on whatever was scored, also after a bag broke
off: the summary then records the error beside the episodes' figures (VOC of the fused and each
mode's curve, docs/upstream.md §7.2, and with ground truth the error of the fused progress).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.types import ALL_MODES
from ..files.outputs import write_text
from .plots import plot_results


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay produced: per-episode figures and counters (also in ``summary.json``)."""

    out_dir: Path
    episodes: list[dict[str, Any]]
    counters: dict[str, int]
    output_bag: Path | None = None


@dataclass
class ReplayEpisode:
    """An episode of the replay and the result records scored in it."""

    episode_id: str
    task: str
    records: list[dict[str, Any]] = field(default_factory=list)


def write_summary(out_dir: Path, episodes: list[ReplayEpisode], counters: dict[str, int],
                  output_bag: Path | None, run: dict[str, Any],
                  error: BaseException | None) -> ReplaySummary:
    """Plot each episode with records and write ``summary.json``.

    Args:
        run: What was replayed (bag, model, cameras, ...): the summary's leading keys.
        error: What stopped the run early, if anything (recorded in the summary).
    """
    scored = [e for e in episodes if e.records]
    for ep in scored:
        name = 'progress.png' if len(scored) == 1 else f'progress_{ep.episode_id}.png'
        plot_results(ep.records, out_dir / name, f'{ep.task} ({ep.episode_id})')
    summary = ReplaySummary(out_dir, [episode_summary(e) for e in scored], counters, output_bag)
    doc = {**run, 'output_bag': None if output_bag is None else str(output_bag),
           'error': None if error is None else f'{type(error).__name__}: {error}',
           'counters': summary.counters, 'episodes': summary.episodes}
    write_text(out_dir / 'summary.json', json.dumps(doc, indent=1) + '\n')
    return summary


def episode_summary(ep: ReplayEpisode) -> dict[str, Any]:
    """VOC (docs/upstream.md §7.2) of the transitions' curves and, with ground truth, the progress
    error."""
    from ..evaluation.metrics import voc

    moves = [r for r in ep.records if r['step'] > 0]
    out: dict[str, Any] = {
        'episode_id': ep.episode_id, 'task': ep.task, 'samples': len(ep.records),
        'valid': sum(bool(r['valid']) for r in moves), 'transitions': len(moves),
        'start_ns': ep.records[0]['stamp_after_ns'], 'end_ns': ep.records[-1]['stamp_after_ns'],
        'final_progress': ep.records[-1]['progress'], 'done': bool(ep.records[-1]['done']),
        'final_task_status': ep.records[-1]['task_status'],
        'voc': voc([r['progress'] for r in moves]),
    }
    curves = {m.value: [r[f'{m.value}_progress'] for r in moves
                        if r[f'{m.value}_progress'] is not None] for m in ALL_MODES}
    out['voc_modes'] = {mode: voc(curve) for mode, curve in curves.items() if curve}
    pairs = [(r['progress'], r['gt_progress']) for r in moves if r['gt_progress'] is not None]
    if pairs:
        err = np.array([p - g for p, g in pairs])
        out.update(gt_mae=float(np.mean(np.abs(err))), gt_rmse=float(math.sqrt(np.mean(err ** 2))),
                   gt_voc=voc([g for _, g in pairs]))
    return out
