"""Episode events: what the worker (and bag replay) announce on ``~/episode``, and which ones a
scored result raises. Pure data, shared by the node, its messages and offline replay."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..core.result import StepResult


class EventKind(enum.IntEnum):
    """Episode events; the values are the ``EpisodeEvent`` message constants."""

    READY = 0
    START = 1
    RESET = 2
    DONE = 3
    TASK_CHANGED = 4
    GOAL_CHANGED = 5
    SHUTDOWN = 6
    PAUSED = 7
    TASK_STATUS = 8
    START_IS_GOAL = 9


@dataclass(frozen=True)
class WorkerEvent:
    """An episode event; ``stamp_ns`` is the triggering sample's stamp (None: the node's now)."""

    kind: EventKind
    episode_id: str = ''
    previous_episode_id: str = ''
    task: str = ''
    detail: str = ''
    stamp_ns: int | None = None


def result_events(result: StepResult) -> list[WorkerEvent]:
    """The ``~/episode`` events a scored result raises, stamped with its sample: DONE at the
    terminal transition, START_IS_GOAL at a flagged START sample, TASK_STATUS when the task
    monitor's status changed. The node's worker and bag replay publish exactly these."""
    common = {'episode_id': result.episode_id, 'task': result.task,
              'stamp_ns': result.stamp_after_ns}
    events = []
    if result.terminal:
        events.append(WorkerEvent(EventKind.DONE, detail=f'progress {result.progress:.3f}',
                                  **common))
    if result.is_start and result.start_is_goal:
        events.append(WorkerEvent(EventKind.START_IS_GOAL, detail=result.reason, **common))
    if result.task_status_changed:
        events.append(WorkerEvent(EventKind.TASK_STATUS, detail=result.task_event, **common))
    return events
