"""The engine's per-sample result and its flat record form (JSONL/CSV rows, message fields)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .confidence import CONFIDENCE_FIELDS
from .monitor import TaskStatus
from .progress import ModeReading, StepStatus
from .shaping import ShapedReward
from .types import Mode


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """Everything known about one scored sample.

    ``step`` 0 is the episode's START sample: progress 0 by definition, no query, no reward.
    ``valid`` is False whenever the value must not be trusted (partial, held, zeroed readings or a
    backend failure); ``reason`` says why. ``done`` is latched from the first success until reset;
    ``terminal`` marks only that first successful transition.

    ``task_status`` is the task monitor's verdict (:mod:`.monitor`); ``task_event`` says why it
    changed at this sample ('' when it did not: adapters publish an event exactly then).
    ``start_is_goal`` flags every result of an episode whose goal looks like its start
    (:mod:`.start_goal`); the START result also has the measured ``start_goal_distance``.
    """

    episode_id: str
    step: int
    task: str
    stamp_before_ns: int | None
    stamp_after_ns: int
    progress: float
    progress_raw: float
    readings: tuple[ModeReading, ...]
    consistency_weight: float | None
    status: StepStatus
    valid: bool
    reason: str
    reward: ShapedReward | None
    done: bool
    latency_s: float
    model_id: str
    view_layout: str
    task_status: TaskStatus = TaskStatus.RUNNING
    task_event: str = ''
    start_is_goal: bool = False
    start_goal_distance: float | None = None

    @property
    def is_start(self) -> bool:
        return self.step == 0

    @property
    def task_status_changed(self) -> bool:
        return bool(self.task_event)

    @property
    def terminal(self) -> bool:
        return self.reward is not None and self.reward.terminal

    def reading(self, mode: Mode) -> ModeReading:
        return next(r for r in self.readings if r.mode is mode)

    def to_record(self) -> dict[str, Any]:
        """A flat, JSON-serialisable dict: one JSONL line or CSV row per sample."""
        rec: dict[str, Any] = {
            'episode_id': self.episode_id, 'step': self.step, 'task': self.task,
            'stamp_before_ns': self.stamp_before_ns, 'stamp_after_ns': self.stamp_after_ns,
            'progress': self.progress, 'progress_raw': self.progress_raw,
            'consistency_weight': self.consistency_weight, 'status': self.status.value,
            'valid': self.valid, 'reason': self.reason, 'done': self.done,
            'terminal': self.terminal, 'latency_s': self.latency_s, 'model_id': self.model_id,
            'view_layout': self.view_layout, 'task_status': self.task_status.value,
            'task_event': self.task_event, 'start_is_goal': self.start_is_goal,
            'start_goal_distance': self.start_goal_distance,
        }
        r = self.reward
        rec.update({'reward': r.reward if r else None, 'gamma': r.gamma if r else None,
                    'potential_before': r.potential_before if r else None,
                    'potential_after': r.potential_after if r else None})
        for m in self.readings:
            key = m.mode.value
            rec.update({f'{key}_hop': m.score.hop, f'{key}_hop_raw': m.score.hop_raw,
                        f'{key}_progress': m.progress, f'{key}_progress_raw': m.progress_raw,
                        f'{key}_parse': m.score.status.name.lower(),
                        f'{key}_answer': m.score.text})
            dist = m.score.distribution
            rec.update({f'{key}_confidence_{name}': value for name, value in (
                dist.summary() if dist else dict.fromkeys(CONFIDENCE_FIELDS)).items()})
        return rec
