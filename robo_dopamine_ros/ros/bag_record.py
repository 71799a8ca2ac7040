"""Bag record on a live ROS 2 graph, without rosbag2: raw subscriptions whose CDR bytes go
straight into a rosbag2 v9 writer (rosbags), the QoS adapted to the publishers, bounded waits
for discovery, and a short drain of what was already received when told to stop. Like
:func:`robo_dopamine_ros.ros.bag_tools.play` it installs no signal handler: pass ``stop``.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ..bags.msgtypes import typestore
from ..bags.writer import STORAGES
from ..core.errors import ConfigError
from .bag_tools import graph_node, message_class, stopped

if TYPE_CHECKING:
    from rclpy.node import Node
    from rclpy.topic_endpoint_info import TopicEndpointInfo
    from rosbags.interfaces import Connection, Qos
    from rosbags.rosbag2 import Writer

log = logging.getLogger(__name__)

#: Longest a recorder spends taking in messages already received once it is told to stop.
DRAIN_S = 1.0


@dataclass
class RecordStats:
    """What :func:`record` wrote."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)      # topic -> messages
    msgtypes: dict[str, str] = field(default_factory=dict)    # topic -> pkg/msg/Name
    missing: list[str] = field(default_factory=list)          # never had a publisher


def _record_qos(infos: Sequence[TopicEndpointInfo], depth: int) -> QoSProfile:
    """As ``ros2 bag record``: reliable only if every publisher is (a reliable subscription
    does not match a best-effort publisher), transient-local only if every publisher is."""
    reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _bag_qos(info: TopicEndpointInfo) -> Qos:
    """A publisher's QoS in rosbags' form, stored in the bag metadata as rosbag2 does."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    p = info.qos_profile

    def span(d: Duration) -> QosTime:
        return QosTime(*divmod(d.nanoseconds, 1_000_000_000))

    return Qos(history=QosHistory[p.history.name], depth=p.depth,
               reliability=QosReliability[p.reliability.name],
               durability=QosDurability[p.durability.name], deadline=span(p.deadline),
               lifespan=span(p.lifespan), liveliness=QosLiveliness[p.liveliness.name],
               liveliness_lease_duration=span(p.liveliness_lease_duration),
               avoid_ros_namespace_conventions=p.avoid_ros_namespace_conventions)


def record(path: str | Path, topics: Sequence[str], storage: str = 'mcap',
           duration_s: float | None = None, stop: threading.Event | None = None,
           discover_timeout_s: float = 10.0, depth: int = 100,
           context: Context | None = None) -> RecordStats:
    """Record topics of the live graph into a new rosbag2 v9 bag (``ros2 bag record``).

    A topic's type comes from the graph, so it is subscribed as soon as it has a publisher;
    the bag is created with the first one. Messages are written as received (CDR bytes) with
    the receive time as bag time; header stamps inside are untouched. Recording ends after
    ``duration_s``, when ``stop`` is set or when the context shuts down; messages already
    received are then drained into the bag before it is closed.

    Args:
        path: bag directory to create (must not exist).
        topics: topics to record (at least one).
        storage: ``'mcap'`` or ``'sqlite3'``.
        duration_s: stop after this many seconds (default: until stopped).
        stop: set to end recording.
        discover_timeout_s: topics still without publisher after this long are reported (an
            error if none has one, else a warning while recording goes on and keeps looking).
        depth: subscription history depth.
        context: rclpy context to use (default: a private one, shut down on return).

    Raises:
        ConfigError: bad arguments, an existing ``path``, no publisher on any topic, or a
            topic whose type rosbags does not know or that has several types.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    if not topics:
        raise ConfigError('record needs at least one topic')
    if storage not in STORAGES:
        raise ConfigError(f'storage must be one of {list(STORAGES)!r}, got {storage!r}')
    if duration_s is not None and not duration_s > 0:
        raise ConfigError(f'duration_s must be > 0, got {duration_s!r}')
    out = Path(path)
    if out.exists():
        raise ConfigError(f'bag path exists already, not overwriting: {str(out)!r}')
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    stats = RecordStats(path=out)
    with graph_node('robo_dopamine_recorder', context) as node:
        recorder = _Recorder(node, lambda: Writer(out, version=9, storage_plugin=plugin),
                             list(dict.fromkeys(topics)), stats, depth)
        try:
            recorder.run(duration_s, discover_timeout_s, stop)
        except WriterError as e:
            raise ConfigError(f'cannot write bag {str(out)!r}: {e}') from e
        finally:
            recorder.close()
    log.info('recorded %s: %s', out, stats.counts)
    return stats


class _Recorder:
    """Raw subscriptions writing into one bag, added as topics get publishers."""

    def __init__(self, node: Node, new_writer: Callable[[], Writer], topics: list[str],
                 stats: RecordStats, depth: int) -> None:
        self.node, self.new_writer, self.stats, self.depth = node, new_writer, stats, depth
        self.pending = topics
        self.writer: Writer | None = None
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)

    def run(self, duration_s: float | None, discover_timeout_s: float,
            stop: threading.Event | None) -> None:
        start = time.monotonic()
        end = math.inf if duration_s is None else start + duration_s
        discover_deadline = start + discover_timeout_s
        next_poll = start
        while not stopped(self.node, stop) and (now := time.monotonic()) < end:
            if self.pending and now >= next_poll:
                self.subscribe_new()
                next_poll = now + 0.1
                if self.pending and now >= discover_deadline:
                    if self.writer is None:
                        raise ConfigError(f'no publisher appeared within '
                                          f'{discover_timeout_s:.1f} s on {self.pending!r}')
                    log.warning('recording without %s: no publisher yet', self.pending)
                    discover_deadline = math.inf
            self.executor.spin_once(timeout_sec=min(0.1, max(0.0, end - now)))
        if self.writer is None:
            raise ConfigError(f'recording ended before any publisher appeared on '
                              f'{self.pending!r}')
        # Drain what has already arrived: spin until a short spell passes with nothing new,
        # bounded, since a publisher that keeps going would otherwise never let it end.
        drain_end = time.monotonic() + DRAIN_S
        before = -1
        while (self.node.context.ok() and before != sum(self.stats.counts.values())
               and time.monotonic() < drain_end):
            before = sum(self.stats.counts.values())
            self.executor.spin_once(timeout_sec=0.05)

    def subscribe_new(self) -> None:
        store = typestore()
        types = dict(self.node.get_topic_names_and_types())
        for topic in [t for t in self.pending if t in types and self.node.count_publishers(t)]:
            if len(types[topic]) != 1:
                raise ConfigError(f'topic {topic!r} has several types {types[topic]!r}; '
                                  'cannot record it')
            msgtype = types[topic][0]
            if msgtype not in store.fielddefs:
                raise ConfigError(f'cannot record {topic!r}: type {msgtype!r} is unknown to '
                                  'the Jazzy typestore')
            if self.writer is None:
                self.writer = self.new_writer()
                self.writer.open()
            infos = self.node.get_publishers_info_by_topic(topic)
            conn = self.writer.add_connection(topic, msgtype, typestore=store,
                                              offered_qos_profiles=[_bag_qos(i) for i in infos])
            self.node.create_subscription(message_class(msgtype), topic,
                                          functools.partial(self.on_message, topic, conn),
                                          _record_qos(infos, self.depth), raw=True)
            self.pending.remove(topic)
            self.stats.msgtypes[topic] = msgtype
            self.stats.counts[topic] = 0

    def on_message(self, topic: str, conn: Connection, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(conn, self.node.get_clock().now().nanoseconds, data)
        self.stats.counts[topic] += 1

    def close(self) -> None:
        self.executor.shutdown()
        self.stats.missing = list(self.pending)
        if self.writer is not None:
            self.writer.close()
