"""ROS's standard QoS overrides for the reward node's publishers and camera subscriptions.

A ROS user overrides a topic's QoS with read-only parameters given at startup,
``qos_overrides./<topic>.<publisher|subscription>.<policy>`` (``--params-file``, ``-p``). rclpy
applies them only on the node that creates the entity (``QoSOverridingOptions``), but the cameras
are subscribed on an internal node that ignores the process's arguments and is made anew at
every activate (ros/cameras.py). So the overrides are read here, on the reward node that was
given them, and the effective profile is handed to whichever node creates the entity. Once
applied they are declared on the reward node, read-only as in rclpy (``ros2 param get`` shows
them). An invalid value or an unknown policy for one of our topics is refused with the
parameter's name; an override for a topic this node neither publishes nor subscribes is only
reported (:meth:`QosOverrides.unused`: a robot-wide file may address other nodes' topics).
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Sequence
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

from ..core.errors import ConfigError
from ..pipeline.params import NodeConfig, Reliability

PREFIX = 'qos_overrides.'


class Entity(str, enum.Enum):
    """Which side of a topic an override is for (the name's second-to-last part)."""

    PUBLISHER = 'publisher'
    SUBSCRIPTION = 'subscription'


def _choice(policy: type[enum.Enum]) -> Callable[[Any], Any]:
    """A policy given by its lower-case name, as rclpy writes it (``best_effort``)."""
    names = {member.name.lower(): member for member in policy if member.name != 'UNKNOWN'}

    def parse(value: Any) -> Any:
        if not isinstance(value, str) or value.lower() not in names:
            raise ValueError(f'one of {", ".join(names)}')
        return names[value.lower()]
    return parse


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError('an integer >= 1')
    return value


def _nanoseconds(value: Any) -> Duration:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError('an integer >= 0 (nanoseconds)')
    return Duration(nanoseconds=value)


#: The policies an override may set (rclpy's names and value types) -> their parser.
POLICIES: dict[str, Callable[[Any], Any]] = {
    'reliability': _choice(ReliabilityPolicy),
    'history': _choice(HistoryPolicy),
    'depth': _count,
    'durability': _choice(DurabilityPolicy),
    'liveliness': _choice(LivelinessPolicy),
    'deadline': _nanoseconds,
    'liveliness_lease_duration': _nanoseconds,
    'lifespan': _nanoseconds,
}


class QosOverrides:
    """The ``qos_overrides.*`` parameters given to ``node`` at startup, applied on request."""

    def __init__(self, node: Node) -> None:
        self._node = node
        # rclpy keeps the overrides (command line, params files, constructor) only in this
        # private attribute (as ros/params.py); an undeclared name is otherwise invisible.
        self._given = {name: param.value for name, param in
                       getattr(node, '_parameter_overrides', {}).items()
                       if name.startswith(PREFIX)}
        self._used: set[str] = set()

    def profile(self, topic: str, entity: Entity, base: QoSProfile) -> QoSProfile:
        """``base`` with the overrides given for ``topic`` (as the node names it) applied.

        Raises:
            ConfigError: An override of this topic names an unknown policy (or ``lifespan``
                for a subscription) or has a bad value; the message names the parameter.
        """
        prefix = f'{PREFIX}{self._node.resolve_topic_name(topic)}.{entity.value}.'
        mine = {name: value for name, value in self._given.items() if name.startswith(prefix)}
        qos = copy.copy(base)
        for name, value in sorted(mine.items()):
            policy = name[len(prefix):]
            parse = POLICIES.get(policy)
            if parse is None or (policy == 'lifespan' and entity is Entity.SUBSCRIPTION):
                allowed = [p for p in POLICIES
                           if p != 'lifespan' or entity is Entity.PUBLISHER]
                raise ConfigError(f'parameter {name!r}: unknown QoS policy {policy!r} for a '
                                  f'{entity.value} (known: {", ".join(allowed)})')
            try:
                setattr(qos, policy, parse(value))
            except ValueError as err:
                raise ConfigError(f'parameter {name!r} must be {err}, got {value!r}') from None
        for name, value in mine.items():
            if not self._node.has_parameter(name):
                self._node.declare_parameter(name, value, ParameterDescriptor(
                    description=f'QoS override of the {entity.value} of {topic!r}; startup only',
                    read_only=True))
        self._used.update(mine)
        return qos

    def cameras(self, config: NodeConfig) -> tuple[QoSProfile, ...]:
        """Each configured camera's subscription QoS: ``qos.reliability`` and ``qos.depth``
        (keep last), then that camera topic's overrides."""
        base = QoSProfile(
            depth=config.qos_depth, history=HistoryPolicy.KEEP_LAST,
            reliability=(ReliabilityPolicy.RELIABLE if config.reliability is Reliability.RELIABLE
                         else ReliabilityPolicy.BEST_EFFORT))
        return tuple(self.profile(camera.topic, Entity.SUBSCRIPTION, base)
                     for camera in config.cameras)

    def unused(self) -> Sequence[str]:
        """The overrides given for no entity this node has made so far (sorted names)."""
        return sorted(set(self._given) - self._used)
