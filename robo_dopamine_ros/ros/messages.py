"""Engine results and episode events -> ROS messages; nanoseconds <-> ``builtin_interfaces/Time``.

The field values come from :mod:`.fields` (shared with bag replay); this module only makes rclpy
messages of them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from ..core.result import StepResult
from ..msg import Confidence, EpisodeEvent, Progress, Reward
from ..pipeline.events import WorkerEvent
from ..pipeline.fields import (
    confidence_fields,
    episode_event_fields,
    progress_fields,
    reward_fields,
)

_NS_PER_S = 1_000_000_000
T = TypeVar('T')


def ns_to_time(stamp_ns: int) -> Time:
    """Integer nanoseconds -> ``builtin_interfaces/Time`` (exact)."""
    sec, nanosec = divmod(int(stamp_ns), _NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def time_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds (exact)."""
    return stamp.sec * _NS_PER_S + stamp.nanosec


def _message(cls: type[T], fields: dict[str, Any]) -> T:
    """An rclpy message from :mod:`.fields` values (times in ns become ``Time``)."""
    types = cls.get_fields_and_field_types()  # type: ignore[attr-defined]
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if types[name] == 'std_msgs/Header':
            value = Header(stamp=ns_to_time(value['stamp']), frame_id=value['frame_id'])
        elif types[name] == 'builtin_interfaces/Time':
            value = ns_to_time(value)
        values[name] = value
    return cls(**values)


def progress_msg(result: StepResult, frame_id: str) -> Progress:
    """The ``Progress`` message of one step; ``frame_id`` is the front camera's frame."""
    return _message(Progress, progress_fields(result, frame_id))


def reward_msg(result: StepResult, frame_id: str) -> Reward | None:
    """The ``Reward`` of one transition; None for an episode's START sample (no transition)."""
    fields = reward_fields(result, frame_id)
    return None if fields is None else _message(Reward, fields)


def confidence_msg(result: StepResult, frame_id: str) -> Confidence | None:
    """The ``Confidence`` of one step; None where no reading was scored for it."""
    fields = confidence_fields(result, frame_id)
    return None if fields is None else _message(Confidence, fields)


def episode_event_msg(event: WorkerEvent, stamp_ns: int, frame_id: str = '') -> EpisodeEvent:
    """The ``EpisodeEvent`` message of a worker event, stamped ``stamp_ns``."""
    return _message(EpisodeEvent, episode_event_fields(event, stamp_ns, frame_id))
