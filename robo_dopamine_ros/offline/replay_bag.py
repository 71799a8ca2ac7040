"""Replay's output bag: the input bag copied with the node's result topics added beside it.

A viewer (Foxglove, ``ros2 bag play``) of the copy shows every reward beside its image, so each
result is stored at the bag time of the front frame it scores, in the node's own message types
and with the QoS the node offers (``~/episode`` latched).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..bags.bag_copy import BagCopy
from ..bags.msgtypes import build_message
from ..bags.reader import BagMessage, BagReader
from ..core.errors import ConfigError
from ..core.result import StepResult
from ..pipeline.events import WorkerEvent
from ..pipeline.fields import episode_event_fields, progress_fields, reward_fields

PKG = 'robo_dopamine_ros/msg'
EPISODE_EVENT = f'{PKG}/EpisodeEvent'
#: Output topic -> type, under ``ReplayOptions.topic_prefix`` (the node's ``~/`` topics).
OUTPUT_TOPICS: dict[str, str] = {'progress': f'{PKG}/Progress', 'reward': f'{PKG}/Reward',
                                 'episode': EPISODE_EVENT}


def output_topics(prefix: str) -> dict[str, str]:
    """Output name (``progress``, ``reward``, ``episode``) -> topic under ``prefix``."""
    prefix = prefix.rstrip('/')
    return {name: f'{prefix}/{name}' for name in OUTPUT_TOPICS}


def check_free(bag: BagReader, prefix: str) -> None:
    """Refuse a prefix whose output topics the bag has already (a recorded node run).

    Raises:
        ConfigError: An output topic is in the bag.
    """
    clash = sorted(set(output_topics(prefix).values()) & set(bag.topics))
    if clash:
        raise ConfigError(f'the bag has {clash!r} already (a recorded node run?): '
                          'choose another topic prefix for the replay topics')


class ResultBag:
    """An open :class:`BagCopy` with the output topics added; results go in as they are scored."""

    def __init__(self, out: BagCopy, prefix: str) -> None:
        self.out = out
        self.topics = output_topics(prefix)
        for name, topic in self.topics.items():
            out.add_topic(topic, OUTPUT_TOPICS[name], _qos(name))

    def copy(self, message: BagMessage) -> None:
        """Copy a message of the input bag unchanged."""
        self.out.copy(message)

    def write_result(self, result: StepResult, bag_ns: int, frame_id: str) -> None:
        """The node's ``~/progress`` and (for a transition) ``~/reward`` messages of ``result``."""
        self.out.write(self.topics['progress'], bag_ns, build_message(
            OUTPUT_TOPICS['progress'], progress_fields(result, frame_id)))
        reward = reward_fields(result, frame_id)
        if reward is not None:
            self.out.write(self.topics['reward'], bag_ns,
                           build_message(OUTPUT_TOPICS['reward'], reward))

    def write_event(self, event: WorkerEvent, stamp_ns: int, bag_ns: int, frame_id: str) -> None:
        """The node's ``~/episode`` message of ``event`` (header stamp ``stamp_ns``)."""
        fields = episode_event_fields(event, stamp_ns, frame_id)
        self.out.write(self.topics['episode'], bag_ns, build_message(EPISODE_EVENT, fields))


@contextmanager
def open_result_bag(path: Path, source: BagReader, storage: str,
                    prefix: str) -> Iterator[ResultBag]:
    """A copy of ``source`` at ``path`` with the output topics added."""
    with BagCopy(path, source, storage) as out:
        yield ResultBag(out, prefix)


def _qos(name: str) -> list[Any]:
    """The QoS the node offers on an output topic (``~/episode`` is latched), for playback."""
    from rosbags import interfaces as ri

    zero = ri.QosTime(0, 0)
    durability = (ri.QosDurability.TRANSIENT_LOCAL if name == 'episode'
                  else ri.QosDurability.VOLATILE)
    return [ri.Qos(history=ri.QosHistory.KEEP_LAST, depth=10,
                   reliability=ri.QosReliability.RELIABLE, durability=durability, deadline=zero,
                   lifespan=zero, liveliness=ri.QosLiveliness.AUTOMATIC,
                   liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)]
