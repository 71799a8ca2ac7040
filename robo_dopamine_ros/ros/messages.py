"""Engine results and episode events -> ROS messages; nanoseconds <-> ``builtin_interfaces/Time``.

The per-mode arrays always cover :data:`ALL_MODES` in that order (a mode that was not requested
is ``PARSE_SKIPPED`` with NaN values), so a consumer can index them without reading ``modes``.
"""

from __future__ import annotations

import math

from builtin_interfaces.msg import Time

from ..core.result import StepResult
from ..core.types import ALL_MODES
from ..msg import EpisodeEvent, Progress, Reward
from .worker import WorkerEvent

_NS_PER_S = 1_000_000_000
NAN = math.nan


def ns_to_time(stamp_ns: int) -> Time:
    """Integer nanoseconds -> ``builtin_interfaces/Time`` (exact)."""
    sec, nanosec = divmod(int(stamp_ns), _NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def time_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds (exact)."""
    return stamp.sec * _NS_PER_S + stamp.nanosec


def _or_nan(value: float | None) -> float:
    return NAN if value is None else float(value)


def progress_msg(result: StepResult, frame_id: str) -> Progress:
    """The ``Progress`` message of one step; ``frame_id`` is the front camera's frame."""
    msg = Progress()
    msg.header.stamp = ns_to_time(result.stamp_after_ns)
    msg.header.frame_id = frame_id
    before = result.stamp_before_ns
    msg.before_stamp = ns_to_time(result.stamp_after_ns if before is None else before)
    msg.episode_id = result.episode_id
    msg.step = result.step
    msg.task = result.task
    msg.progress = float(result.progress)
    msg.progress_raw = float(result.progress_raw) if result.valid else NAN
    readings = [result.reading(m) for m in ALL_MODES]
    msg.modes = [m.value for m in ALL_MODES]
    msg.mode_progress = [_or_nan(r.progress) for r in readings]
    msg.mode_progress_raw = [_or_nan(r.progress_raw) for r in readings]
    msg.mode_hop = [_or_nan(r.score.hop) for r in readings]
    msg.mode_hop_raw = [_or_nan(r.score.hop_raw) for r in readings]
    msg.raw_answers = [r.score.text for r in readings]
    msg.parse_status = [int(r.score.status) for r in readings]
    msg.valid = result.valid
    msg.status = result.status.value
    msg.reason = result.reason
    msg.consistency_weight = _or_nan(result.consistency_weight)
    msg.latency_s = float(result.latency_s)
    msg.model_id = result.model_id
    msg.view_layout = result.view_layout
    return msg


def reward_msg(result: StepResult, frame_id: str) -> Reward | None:
    """The ``Reward`` of one transition; None for an episode's START sample (no transition)."""
    shaped = result.reward
    if shaped is None or result.stamp_before_ns is None:
        return None
    msg = Reward()
    msg.header.stamp = ns_to_time(result.stamp_after_ns)
    msg.header.frame_id = frame_id
    msg.before_stamp = ns_to_time(result.stamp_before_ns)
    msg.episode_id = result.episode_id
    msg.step = result.step
    msg.reward = float(shaped.reward)
    msg.potential_before = float(shaped.potential_before)
    msg.potential_after = float(shaped.potential_after)
    msg.gamma = float(shaped.gamma)
    msg.r_gold = float(shaped.r_gold)
    msg.done = result.done
    msg.terminal = shaped.terminal
    msg.valid = result.valid
    msg.reason = '' if result.valid else result.status.value
    return msg


def episode_event_msg(event: WorkerEvent, stamp_ns: int, frame_id: str = '') -> EpisodeEvent:
    """The ``EpisodeEvent`` message of a worker event, stamped ``stamp_ns``."""
    msg = EpisodeEvent()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.event = int(event.kind)
    msg.episode_id = event.episode_id
    msg.previous_episode_id = event.previous_episode_id
    msg.task = event.task
    msg.detail = event.detail
    return msg
