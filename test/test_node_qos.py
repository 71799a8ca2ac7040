"""ROS's ``qos_overrides.*`` parameters on the reward node (ros/qos.py): given in a params file,
applied to the camera subscriptions of its internal node (made anew at every activate) and to
its publishers, seen on the live ROS graph; bad overrides refused with the parameter's name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from node_harness import TASK, NodeHarness, unique_namespace, wait_until
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from test_node_lifecycle import scored_after_activation

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.pipeline.params import NodeConfig
from robo_dopamine_ros.ros.qos import Entity, QosOverrides

pytestmark = pytest.mark.ros
SUCCESS = TransitionCallbackReturn.SUCCESS
PARAMS = {'engine.missing_goal': 'blank', 'sampling.interval_s': 0.05,
          'engine.modes': ['incremental', 'forward'], 'task': TASK}
CAMERAS = '/robo_dopamine_cameras'       # the internal camera node, by its name


def params_file(tmp_path: Path, overrides: dict[str, Any]) -> list[str]:
    """The node arguments of a params file giving ``overrides`` to every node (``/**``)."""
    path = tmp_path / 'qos.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': overrides}}))
    return ['--ros-args', '--params-file', str(path)]


def endpoints(h: NodeHarness, topic: str, node: str, publishers: bool = False) -> list[Any]:
    """The QoS of ``node``'s subscriptions (or publishers) of ``topic`` on the ROS graph."""
    info = (h.probe.node.get_publishers_info_by_topic if publishers
            else h.probe.node.get_subscriptions_info_by_topic)(topic)
    return [i.qos_profile for i in info if f'{i.node_namespace}/{i.node_name}' == h.ns + node]


def test_node_qos_overrides_reach_the_cameras_across_activations_and_the_publishers(
        tmp_path: Path) -> None:
    ns = unique_namespace()
    front, left = f'{ns}/cam_front', f'{ns}/cam_left'
    args = params_file(tmp_path, {
        f'qos_overrides.{front}.subscription.reliability': 'best_effort',
        f'qos_overrides.{front}.subscription.depth': 7,
        f'qos_overrides.{ns}/robo_dopamine/progress.publisher.durability': 'transient_local',
    })
    with NodeHarness(PARAMS, transports={'front': 'raw', 'left': 'raw'}, ns=ns,
                     node_args=args) as h:
        for activation in (1, 2):
            if activation > 1:      # a new internal camera node, its subscriptions made anew
                assert h.node.trigger_deactivate() is SUCCESS
                wait_until(lambda: not endpoints(h, front, CAMERAS),
                           'the camera subscriptions to go with the deactivation')
                assert h.node.trigger_activate() is SUCCESS

            def both() -> tuple[list[Any], list[Any]] | None:
                subs = endpoints(h, front, CAMERAS), endpoints(h, left, CAMERAS)
                return subs if all(len(e) == 1 for e in subs) else None
            (front_qos,), (left_qos,) = wait_until(
                both, f'the camera subscriptions of activation {activation}')
            assert front_qos.reliability is ReliabilityPolicy.BEST_EFFORT      # overridden
            assert left_qos.reliability is ReliabilityPolicy.RELIABLE          # qos.reliability
            assert scored_after_activation(h) is not None
        progress = endpoints(h, f'{ns}/robo_dopamine/progress', '/robo_dopamine', True)
        assert [p.durability for p in progress] == [DurabilityPolicy.TRANSIENT_LOCAL]
        reward = endpoints(h, f'{ns}/robo_dopamine/reward', '/robo_dopamine', True)
        assert [p.durability for p in reward] == [DurabilityPolicy.VOLATILE]
        # Read-only, as ROS declares them: visible, not changeable at run time.
        name = f'qos_overrides.{front}.subscription.depth'
        assert h.node.get_parameter(name).value == 7
        assert not h.node.set_parameters([Parameter(name, value=3)])[0].successful


@pytest.mark.parametrize(('entity', 'policy', 'value', 'message'), [
    ('subscription', 'reliability', 'sometimes',
     "must be one of system_default, reliable, best_effort, best_available, got 'sometimes'"),
    ('subscription', 'depth', 0, 'must be an integer >= 1, got 0'),
    ('subscription', 'relability', 'reliable',
     "unknown QoS policy 'relability' for a subscription (known: reliability, history"),
    ('subscription', 'lifespan', 100, "unknown QoS policy 'lifespan' for a subscription"),
])
def test_node_qos_a_bad_camera_override_fails_configure_naming_it(
        tmp_path: Path, entity: str, policy: str, value: Any, message: str) -> None:
    ns = unique_namespace()
    name = f'qos_overrides.{ns}/cam_front.{entity}.{policy}'
    with pytest.raises(ConfigError, match=re.escape(f'parameter {name!r}') + '.*'
                       + re.escape(message)):
        NodeHarness(PARAMS, transports={'front': 'raw'}, ns=ns,
                    node_args=params_file(tmp_path, {name: value}))


def test_node_qos_a_bad_publisher_override_refuses_the_node(tmp_path: Path) -> None:
    ns = unique_namespace()
    name = f'qos_overrides.{ns}/robo_dopamine/reward.publisher.history'
    with pytest.raises(ConfigError, match=re.escape(
            f"parameter {name!r} must be one of system_default, keep_last, keep_all, got 2")):
        NodeHarness(PARAMS, transports={'front': 'raw'}, ns=ns,
                    node_args=params_file(tmp_path, {name: 2}))


@pytest.fixture
def context() -> Iterator[rclpy.Context]:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def test_qos_overrides_compose_the_camera_profiles_and_report_the_unused(
        context: rclpy.Context) -> None:
    prefix = 'qos_overrides./robot/cam'
    node = rclpy.create_node('robo_dopamine', namespace='/robot', context=context,
                             parameter_overrides=[
                                 Parameter(f'{prefix}.subscription.history', value='keep_all'),
                                 Parameter(f'{prefix}.subscription.deadline', value=50_000_000),
                                 Parameter(f'{prefix}.publisher.depth', value=3),
                                 Parameter('qos_overrides./elsewhere.subscription.depth', value=1),
                                 Parameter('queue.length', value=4)])
    try:
        overrides = QosOverrides(node)
        config = NodeConfig.from_values({'cameras.front.topic': 'cam',       # relative
                                         'cameras.left.topic': '/robot/left',
                                         'cameras.right.topic': '', 'qos.depth': 9})
        front, left = overrides.cameras(config)
        assert (front.history, front.depth, front.reliability, front.deadline.nanoseconds) == (
            HistoryPolicy.KEEP_ALL, 9, ReliabilityPolicy.BEST_EFFORT, 50_000_000)
        assert (left.history, left.depth, left.deadline.nanoseconds) == (
            HistoryPolicy.KEEP_LAST, 9, 0)
        base = QoSProfile(depth=10)
        assert overrides.profile('cam', Entity.PUBLISHER, base).depth == 3
        assert base.depth == 10                                  # the base is left alone
        assert overrides.unused() == ['qos_overrides./elsewhere.subscription.depth']
    finally:
        node.destroy_node()
