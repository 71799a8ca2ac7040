"""launch/reward.launch.py, run through the strict launch harness (test/launch_harness.py).

The installed launch file is loaded, its arguments resolved to the command line launch_ros would
run, and that command started: the real node must then appear in the ROS graph under the launched
name and namespace with the parameters of the YAML file plus the launch overrides. What this
cannot cover is ``ros2 launch`` itself (see the harness docstring).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import yaml
from PIL import Image

rclpy = pytest.importorskip('rclpy', reason='rclpy is not importable: no ROS 2 here')

from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch_harness import (  # noqa: E402
    DeclareLaunchArgument,
    LaunchConfiguration,
    LaunchDescription,
    Node,
    OpaqueFunction,
    declared_arguments,
    flatten,
    load_launch_description,
    resolve,
    ros_environment,
    stand_in_modules,
    start,
)
from rcl_interfaces.srv import GetParameters, ListParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402

pytestmark = pytest.mark.ros

PACKAGE = 'robo_dopamine_ros'
# Own DDS domain (valid ids stop at 232 with Fast DDS) and loopback only: see ros_environment.
DOMAIN_ID = 180 + os.getpid() % 50
# Parameters every rclpy node has; they are not ours to list in config/default.yaml.
ROS_BUILTIN_PARAMETERS = {'use_sim_time', 'start_type_description_service'}


@pytest.fixture(scope='module')
def share() -> Path:
    return Path(get_package_share_directory(PACKAGE))


@pytest.fixture(scope='module')
def description(share: Path) -> LaunchDescription:
    return load_launch_description(share / 'launch' / 'reward.launch.py')


def override_file(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_launch_file_is_the_installed_copy_of_the_source(repo_root: Path, share: Path) -> None:
    assert share == repo_root / 'install' / PACKAGE / 'share' / PACKAGE
    for name in ('launch/reward.launch.py', 'config/default.yaml', 'config/single_camera.yaml',
                 'config/demo.yaml'):
        assert (share / name).read_bytes() == (repo_root / name).read_bytes(), name


def test_launch_declares_every_argument_with_its_default_and_a_description(
        description: LaunchDescription, share: Path) -> None:
    arguments = declared_arguments(description)
    assert {name: arg.default_value for name, arg in arguments.items()} == {
        'params_file': str(share / 'config' / 'default.yaml'), 'namespace': '',
        'use_sim_time': 'false', 'model': '', 'device': '', 'front_topic': '', 'left_topic': '',
        'right_topic': '', 'task': '', 'goal_image': '',
    }
    assert arguments['use_sim_time'].choices == ['true', 'false']
    assert all(len(arg.description or '') > 20 for arg in arguments.values())
    assert 'overrides model.path' in (arguments['model'].description or '')


def test_launch_defaults_run_the_node_on_the_installed_default_yaml(
        description: LaunchDescription, share: Path, tmp_path: Path) -> None:
    (node,) = resolve(description, {}, tmp_path)
    overrides = tmp_path / 'launch_params_robo_dopamine_1.yaml'
    assert node.command == [
        str(share.parents[1] / 'lib' / PACKAGE / 'reward_node'), '--ros-args',
        '-r', '__node:=robo_dopamine', '-r', '__ns:=/',
        '--params-file', str(share / 'config' / 'default.yaml'),
        '--params-file', str(overrides),
    ]
    assert override_file(overrides) == {
        '/robo_dopamine': {'ros__parameters': {'use_sim_time': False}}}


def test_launch_overrides_only_the_non_empty_arguments(description: LaunchDescription,
                                                       tmp_path: Path) -> None:
    mine = tmp_path / 'mine.yaml'
    mine.write_text('{}\n')
    (node,) = resolve(description, {
        'namespace': 'robot1', 'params_file': str(mine), 'model': '/m/grm', 'device': 'cpu',
        'front_topic': '/front/image', 'left_topic': '', 'task': 'yes', 'goal_image': '/g.png',
        'use_sim_time': 'true'}, tmp_path)
    assert node.command[1:6] == ['--ros-args', '-r', '__node:=robo_dopamine',
                                 '-r', '__ns:=/robot1']
    assert node.parameter_files[0] == mine
    # 'yes' stays a string: the launch file passes resolved text, which launch_ros quotes.
    assert override_file(node.parameter_files[1]) == {
        '/robot1/robo_dopamine': {'ros__parameters': {
            'use_sim_time': True, 'model.path': '/m/grm', 'model.device': 'cpu',
            'cameras.front.topic': '/front/image', 'task': 'yes', 'goal_image': '/g.png'}}}


def test_launch_rejects_a_use_sim_time_outside_its_choices(description: LaunchDescription,
                                                           tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match='provided value "yes" is not valid'):
        resolve(description, {'use_sim_time': 'yes'}, tmp_path)


def test_harness_rejects_an_undeclared_argument(description: LaunchDescription,
                                                tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="undeclared launch arguments: \\['modle'\\]"):
        resolve(description, {'modle': '/m/grm'}, tmp_path)


@pytest.mark.parametrize('make', [
    lambda: Node(executable='reward_node', node_name='x'),       # before Foxy: node_name
    lambda: Node(node_executable='reward_node', package=PACKAGE),  # before Foxy: node_executable
    lambda: Node(executable='reward_node', parameters={'a': 1}),  # must be a list
    lambda: DeclareLaunchArgument('a', default='x'),
    lambda: OpaqueFunction(function=print, kwarg={}),
    lambda: LaunchConfiguration('a', default_value='x'),
], ids=['node_name', 'node_executable', 'parameters-dict', 'default', 'kwarg', 'default_value'])
def test_harness_stand_ins_reject_arguments_the_real_classes_lack(
        make: Callable[[], object]) -> None:
    with pytest.raises(TypeError):
        make()


def test_harness_has_no_classes_it_does_not_emulate() -> None:
    with stand_in_modules(), pytest.raises(ImportError):
        from launch.actions import IncludeLaunchDescription  # noqa: F401


# --- The launched node in the real ROS graph ---------------------------------------------------

class Probe:
    """A test-side node in a private context, spun on a thread (house style 13)."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node(f'rdr_launch_probe_{uuid.uuid4().hex[:8]}',
                                      context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out after {timeout} s waiting for {what}')
            time.sleep(0.1)

    def call(self, srv_type: Any, name: str, request: Any) -> Any:
        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=30.0):
            raise TimeoutError(f'service {name} did not appear')
        future = client.call_async(request)
        self.wait_for(f'a reply from {name}', future.done, timeout=30.0)
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self.thread.join(timeout=10.0)


@pytest.fixture
def probe() -> Iterator[Probe]:
    p = Probe()
    yield p
    p.close()


def test_launched_node_runs_with_the_yaml_and_the_overrides(
        description: LaunchDescription, share: Path, repo_root: Path, tmp_path: Path,
        probe: Probe) -> None:
    # The installed default.yaml with the scripted test double, so that no model is needed.
    params = yaml.safe_load((share / 'config' / 'default.yaml').read_text())
    params['/**']['ros__parameters']['model']['backend'] = 'scripted-test-double'
    params_file = tmp_path / 'params.yaml'
    params_file.write_text(yaml.safe_dump(params))
    goal = tmp_path / 'goal.png'
    Image.new('RGB', (64, 48), (200, 40, 10)).save(goal)
    ns = f'rdr_launch_{uuid.uuid4().hex[:10]}'
    front = f'/{ns}/front/image_raw'
    task = 'put the cup on the plate: left side'
    (node,) = resolve(description, {
        'params_file': str(params_file), 'namespace': ns, 'device': 'cpu', 'task': task,
        'goal_image': str(goal), 'front_topic': front}, tmp_path)
    log = tmp_path / 'node.log'
    proc = start(node, ros_environment(repo_root, DOMAIN_ID), log)
    fqn = f'/{ns}/robo_dopamine'
    try:
        probe.wait_for('the node in the graph', lambda: proc.poll() is None and (
            'robo_dopamine', f'/{ns}') in probe.node.get_node_names_and_namespaces())

        listed = probe.call(ListParameters, f'{fqn}/list_parameters', ListParameters.Request())
        names = {n for n in listed.result.names if not n.startswith('qos_overrides.')}
        expected = flatten(params['/**']['ros__parameters'])
        expected.update({'model.device': 'cpu', 'task': task, 'goal_image': str(goal),
                         'cameras.front.topic': front})
        # config/default.yaml holds exactly the node's parameters: none missing, none unknown.
        assert names - ROS_BUILTIN_PARAMETERS == set(expected)

        request = GetParameters.Request(names=[*expected, 'use_sim_time'])
        reply = probe.call(GetParameters, f'{fqn}/get_parameters', request)
        got = dict(zip(request.names, map(parameter_value_to_python, reply.values), strict=True))
        assert got == {**expected, 'use_sim_time': False}

        topics = {
            f'{fqn}/progress': 'robo_dopamine_ros/msg/Progress',
            f'{fqn}/reward': 'robo_dopamine_ros/msg/Reward',
            f'{fqn}/episode': 'robo_dopamine_ros/msg/EpisodeEvent',
            '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
        }
        probe.wait_for('the node topics', lambda: topics.items() <= {
            name: types[0] for name, types in probe.node.get_topic_names_and_types()}.items())
        probe.wait_for('the front camera subscription',
                       lambda: probe.node.count_subscribers(front) >= 1)
        services = {s for s, _ in probe.node.get_service_names_and_types()}
        assert {f'{fqn}/{s}' for s in ('reset', 'set_task', 'set_goal', 'score_transition')} \
            <= services
    except (AssertionError, TimeoutError) as err:
        raise AssertionError(f'{err}\n--- node log ---\n{log.read_text()}') from err
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
