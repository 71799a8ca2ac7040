"""Our messages' field values as plain Python: the one mapping from results to message fields.

The node turns these values into rclpy messages (:mod:`.messages`) and bag replay turns them into
rosbags messages of the same types (:func:`..bags.msgtypes.build_message`), so a replayed bag
holds, field for field, what the node would have published. Pure Python (no rclpy), so replay
runs without ROS. Times are integer nanoseconds here (``header`` is ``{'stamp', 'frame_id'}``);
each writer converts them to its ``builtin_interfaces/Time``.

The per-mode arrays always cover :data:`ALL_MODES` in that order (a mode that was not requested
is ``PARSE_SKIPPED`` with NaN values), so a consumer can index them without reading ``modes``.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.result import StepResult
from ..core.types import ALL_MODES
from .events import WorkerEvent

NAN = math.nan


def _or_nan(value: float | None) -> float:
    return NAN if value is None else float(value)


def header(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """A ``std_msgs/Header`` as plain values."""
    return {'stamp': int(stamp_ns), 'frame_id': frame_id}


def progress_fields(result: StepResult, frame_id: str) -> dict[str, Any]:
    """The ``Progress`` of one step; ``frame_id`` is the front camera's frame."""
    before = result.stamp_before_ns
    readings = [result.reading(m) for m in ALL_MODES]
    return {
        'header': header(result.stamp_after_ns, frame_id),
        'before_stamp': result.stamp_after_ns if before is None else before,
        'episode_id': result.episode_id,
        'step': result.step,
        'task': result.task,
        'progress': float(result.progress),
        'progress_raw': float(result.progress_raw) if result.valid else NAN,
        'modes': [m.value for m in ALL_MODES],
        'mode_progress': [_or_nan(r.progress) for r in readings],
        'mode_progress_raw': [_or_nan(r.progress_raw) for r in readings],
        'mode_hop': [_or_nan(r.score.hop) for r in readings],
        'mode_hop_raw': [_or_nan(r.score.hop_raw) for r in readings],
        'raw_answers': [r.score.text for r in readings],
        'parse_status': [int(r.score.status) for r in readings],
        'valid': result.valid,
        'status': result.status.value,
        'reason': result.reason,
        'task_status': result.task_status.value,
        'consistency_weight': _or_nan(result.consistency_weight),
        'latency_s': float(result.latency_s),
        'model_id': result.model_id,
        'view_layout': result.view_layout,
    }


def confidence_fields(result: StepResult, frame_id: str) -> dict[str, Any] | None:
    """The ``Confidence`` of one step; None where no reading carries a distribution (the
    START sample, ``model.confidence`` off, a backend that does not score one)."""
    scored = [(m, d) for m in ALL_MODES if (d := result.reading(m).score.distribution)]
    if not scored:
        return None
    return {
        'header': header(result.stamp_after_ns, frame_id),
        'episode_id': result.episode_id,
        'step': result.step,
        'modes': [m.value for m, _ in scored],
        'mean': [d.mean for _, d in scored],
        'spread': [d.spread for _, d in scored],
        'p_positive': [d.p_positive for _, d in scored],
        'mass': [d.mass for _, d in scored],
        'candidate_hops': list(scored[0][1].hops),
        'probabilities': [p for _, d in scored for p in d.probabilities],
    }


def reward_fields(result: StepResult, frame_id: str) -> dict[str, Any] | None:
    """The ``Reward`` of one transition; None for an episode's START sample (no transition)."""
    shaped = result.reward
    if shaped is None or result.stamp_before_ns is None:
        return None
    return {
        'header': header(result.stamp_after_ns, frame_id),
        'before_stamp': result.stamp_before_ns,
        'episode_id': result.episode_id,
        'step': result.step,
        'reward': float(shaped.reward),
        'potential_before': float(shaped.potential_before),
        'potential_after': float(shaped.potential_after),
        'gamma': float(shaped.gamma),
        'r_gold': float(shaped.r_gold),
        'done': result.done,
        'terminal': shaped.terminal,
        'valid': result.valid,
        'reason': '' if result.valid else result.status.value,
    }


def episode_event_fields(event: WorkerEvent, stamp_ns: int, frame_id: str = '') -> dict[str, Any]:
    """The ``EpisodeEvent`` of a worker event, stamped ``stamp_ns``."""
    return {
        'header': header(stamp_ns, frame_id),
        'event': int(event.kind),
        'episode_id': event.episode_id,
        'previous_episode_id': event.previous_episode_id,
        'task': event.task,
        'detail': event.detail,
    }
