"""Bag play on a live ROS 2 graph without rosbag2 (not on PyPI); record is in bag_record.py.

rclpy moves the bytes and :mod:`robo_dopamine_ros.bags` (rosbags) handles the files. Messages
are never decoded: ``play`` publishes each stored CDR payload as it is (``Publisher.publish``
takes ``bytes``), and ``record`` takes raw subscriptions and writes their CDR bytes straight
into a rosbag2 v9 writer. Both behave like ``ros2 bag`` where it matters for the reward node:
bag timing scaled by ``rate``, ``/clock`` for ``use_sim_time``, QoS adapted to the publishers
(``record``) or to the recorded profiles (``play``), and bounded waits for discovery.

Neither function installs signal handlers: pass a ``threading.Event`` as ``stop`` (the CLI
sets it on SIGINT/SIGTERM). Without a ``context`` each call runs in a private rclpy Context,
so it can run on a thread beside other ROS code.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from ..bags.msgtypes import COMPRESSED_IMAGE, IMAGE
from ..bags.reader import BagReader
from ..core.errors import ConfigError

if TYPE_CHECKING:
    from rclpy.node import Node
    from rosbags.interfaces import Qos

log = logging.getLogger(__name__)

CLOCK_TOPIC = '/clock'
CLOCK_TYPE = 'rosgraph_msgs/msg/Clock'
#: How long the other image topics may lag once one has a subscriber (see ``play``).
SUBSCRIBER_GRACE_S = 1.0


@dataclass
class PlayStats:
    """What :func:`play` did."""

    published: dict[str, int] = field(default_factory=dict)   # topic -> messages
    subscribers: dict[str, int] = field(default_factory=dict)  # image topic -> at start
    clock_msgs: int = 0
    loops: int = 0
    stopped: bool = False         # ended by ``stop`` or context shutdown, not the bag's end
    all_acked: bool = False       # reliable subscribers acknowledged everything at the end


def message_class(msgtype: str) -> type:
    """The rclpy message class for ``pkg/msg/Name`` (its Python package must be importable)."""
    parts = msgtype.split('/')
    try:
        if len(parts) != 3:
            raise ValueError('expected pkg/msg/Name')
        return getattr(importlib.import_module(f'{parts[0]}.{parts[1]}'), parts[2])
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f'message type {msgtype!r} is not importable in this environment '
                          f'(is its package built and sourced?): {e}') from e


@contextmanager
def graph_node(name: str, context: Context | None) -> Iterator[Node]:
    """A node in ``context``, or in a private Context set up and shut down here."""
    own = context is None
    ctx = Context() if own else context
    if own:
        rclpy.init(context=ctx, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node(name, context=ctx)
        try:
            yield node
        finally:
            node.destroy_node()
    finally:
        if own:
            ctx.try_shutdown()


def stopped(node: Node, stop: threading.Event | None) -> bool:
    return (stop is not None and stop.is_set()) or not node.context.ok()


def _wait(stop: threading.Event | None, seconds: float) -> None:
    if seconds <= 0:
        return
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


def _play_qos(profiles: Sequence[Qos], depth: int) -> QoSProfile:
    """As ``ros2 bag play``: the recorded reliability/durability when every publisher agreed,
    else reliable (matches both kinds of subscriber) and volatile."""
    names = [(p.reliability.name, p.durability.name) for p in profiles]
    best_effort = bool(names) and all(r == 'BEST_EFFORT' for r, _ in names)
    latched = bool(names) and all(d == 'TRANSIENT_LOCAL' for _, d in names)
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class _Player:
    """Publishes one bag pass at bag timing, ticking ``/clock`` while it waits."""

    def __init__(self, node: Node, rate: float, clock_hz: float,
                 stop: threading.Event | None, stats: PlayStats) -> None:
        self.node, self.rate, self.stop, self.stats = node, rate, stop, stats
        self.clock_period = 1.0 / clock_hz if clock_hz > 0 else math.inf
        self.clock_pub = None
        if clock_hz > 0:
            self.clock_cls = message_class(CLOCK_TYPE)
            self.clock_pub = node.create_publisher(self.clock_cls, CLOCK_TOPIC, 10)
        self.t0 = 0.0
        self.start_ns = 0
        self.next_tick = math.inf

    def begin(self, start_ns: int) -> None:
        self.t0 = time.monotonic()
        self.start_ns = start_ns
        self.next_tick = self.t0 if self.clock_pub is not None else math.inf

    def bag_time_ns(self, now: float) -> int:
        return self.start_ns + round((now - self.t0) * self.rate * 1e9)

    def sleep_until(self, stamp_ns: int) -> bool:
        """Wait for the wall time of bag time ``stamp_ns``; False when stopped first."""
        due = self.t0 + (stamp_ns - self.start_ns) / 1e9 / self.rate
        while True:
            if stopped(self.node, self.stop):
                return False
            now = time.monotonic()
            if now >= self.next_tick:
                self.tick(min(self.bag_time_ns(now), stamp_ns))
                self.next_tick = now + self.clock_period
            if now >= due:
                return True
            _wait(self.stop, min(due, self.next_tick) - now)

    def tick(self, stamp_ns: int) -> None:
        if self.clock_pub is None:
            return
        msg = self.clock_cls()
        msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, 1_000_000_000)
        self.clock_pub.publish(msg)
        self.stats.clock_msgs += 1


def _wait_for_subscribers(node: Node, topics: Sequence[str], timeout_s: float,
                          stop: threading.Event | None) -> dict[str, int]:
    """Wait until every topic has a subscriber, or ``timeout_s``. Once one topic has one, the
    others get at most :data:`SUBSCRIBER_GRACE_S` more: a consumer subscribes its cameras
    together, and one using fewer cameras (single view) should not cost the whole timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = {t: node.count_subscribers(t) for t in topics}
        now = time.monotonic()
        if any(counts.values()):
            deadline = min(deadline, now + SUBSCRIBER_GRACE_S)
        if all(counts.values()) or now >= deadline or stopped(node, stop):
            return counts
        _wait(stop, 0.02)


def play(bag_path: str | Path, rate: float = 1.0, topics: Sequence[str] | None = None,
         clock: bool = True, clock_hz: float = 40.0, loop: bool = False,
         wait_for_subscribers_s: float = 5.0, ack_timeout_s: float = 5.0, depth: int = 10,
         stop: threading.Event | None = None, context: Context | None = None) -> PlayStats:
    """Publish a bag's messages into the live graph at bag timing (``ros2 bag play``).

    Args:
        bag_path: rosbag2 directory (or bare ``.mcap``/``.db3``).
        rate: playback speed factor (> 0); 2.0 plays twice as fast.
        topics: topics to play (default all).
        clock: publish ``/clock`` (rosgraph_msgs/Clock) at ``clock_hz`` with the bag time, for
            nodes with ``use_sim_time``. Each loop starts the clock again at the bag start.
        loop: replay until ``stop`` is set or the context shuts down.
        wait_for_subscribers_s: before playing, wait up to this long for a subscriber on every
            image topic (sensor_msgs Image/CompressedImage), so the first frames are not lost
            to discovery (see :func:`_wait_for_subscribers`); then play anyway (counts in
            :attr:`PlayStats.subscribers`).
        ack_timeout_s: at the end, wait up to this long for reliable subscribers to acknowledge
            everything (the data is lost if the publisher goes first). Fast DDS acknowledges on
            its heartbeat, about every 3 s, so this usually costs up to 3 s; 0 skips it.
        depth: publisher history depth.
        stop: set to end playback early.
        context: rclpy context to use (default: a private one, shut down on return).

    Returns:
        Per-topic counts and whether playback finished or was stopped.

    Raises:
        ConfigError: bad arguments, an unreadable bag, or a message type not importable here.
    """
    if not rate > 0:
        raise ConfigError(f'rate must be > 0, got {rate!r}')
    if clock and not clock_hz > 0:
        raise ConfigError(f'clock_hz must be > 0, got {clock_hz!r}')
    if wait_for_subscribers_s < 0 or ack_timeout_s < 0:
        raise ConfigError(f'wait_for_subscribers_s and ack_timeout_s must be >= 0, got '
                          f'{wait_for_subscribers_s!r} and {ack_timeout_s!r}')
    stats = PlayStats()
    with BagReader(bag_path) as bag, graph_node('robo_dopamine_player', context) as node:
        chosen = list(bag.topics) if topics is None else list(dict.fromkeys(topics))
        bag_types = bag.topics
        missing = sorted(set(chosen) - set(bag_types))
        if missing:
            raise ConfigError(f'topics {missing!r} are not in bag {str(bag_path)!r}; '
                              f'it has {sorted(bag_types)!r}')
        qos = bag.offered_qos
        pubs = {t: node.create_publisher(message_class(bag_types[t]), t, _play_qos(qos[t], depth))
                for t in chosen}
        stats.published = dict.fromkeys(chosen, 0)
        player = _Player(node, rate, clock_hz if clock else 0.0, stop, stats)
        images = [t for t in chosen if bag_types[t] in (IMAGE, COMPRESSED_IMAGE)]
        stats.subscribers = _wait_for_subscribers(node, images, wait_for_subscribers_s, stop)
        if not all(stats.subscribers.values()):
            log.warning('playing although %s have no subscriber',
                        [t for t, n in stats.subscribers.items() if not n])
        while True:
            player.begin(bag.start_ns)
            for msg in bag.raw(chosen):
                if not player.sleep_until(msg.stamp_ns):
                    stats.stopped = True
                    break
                pubs[msg.topic].publish(bytes(msg.msg))
                stats.published[msg.topic] += 1
            else:
                stats.loops += 1
                player.tick(bag.end_ns)
            if stats.stopped or not loop:
                break
        if ack_timeout_s > 0 and not stats.stopped:
            deadline = time.monotonic() + ack_timeout_s
            stats.all_acked = all(
                p.wait_for_all_acked(Duration(seconds=max(0.0, deadline - time.monotonic())))
                for p in pubs.values())
    log.info('played %s: %s', bag_path, stats)
    return stats
