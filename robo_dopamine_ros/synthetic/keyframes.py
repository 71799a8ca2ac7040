"""Per-frame task state -> sub-task segments in upstream's ``annotated_keyframes.json`` form."""

from __future__ import annotations

from typing import Any

import numpy as np

from .scene import PHASES, Scene
from .spec import Outcome


def episode_keyframes(states: np.ndarray, outcome: Outcome, scene: Scene) -> list[dict[str, Any]]:
    """Segments from the first frame reaching each sub-task, up to the peak state; after the
    peak a non-success episode gets one segment saying what went wrong. Sub-tasks crossed
    within one frame keep the name of the last one."""
    n = len(states)
    peak = n - 1 if outcome is Outcome.SUCCESS else int(np.argmax(states))
    names = [name.format(obj=f'{scene.obj_name} block', zone=f'{scene.zone_name} square')
             for name, _ in PHASES]
    starts: list[tuple[str, int]] = []
    for name, (_, begin) in zip(names, PHASES, strict=True):
        hits = np.nonzero(states[:peak + 1] >= begin)[0]
        if not hits.size:
            break
        starts.append((name, int(hits[0])))
    if outcome is not Outcome.SUCCESS and peak < n - 1:
        tail = {Outcome.FAIL: 'retreat without the block', Outcome.STALL: 'no progress',
                Outcome.REGRESS: 'carry the block back'}[outcome]
        starts.append((tail, peak))
    merged: list[tuple[str, int]] = []
    for name, start in starts:
        if merged and merged[-1][1] == start:
            merged[-1] = (name, start)
        else:
            merged.append((name, start))
    return [{'anotation': name, 'start_frame_id': start,
             'end_frame_id': merged[i + 1][1] if i + 1 < len(merged) else n - 1}
            for i, (name, start) in enumerate(merged)]
