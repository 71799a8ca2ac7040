"""launch/reward.launch.py through the real ``ros2 launch`` (launch 3.4.3, launch_ros 0.26.6),
checked from outside with rclpy and the real ``ros2`` CLI (``--no-daemon``: no daemon process
outlives a test): the arguments (``--show-args``), a namespace, a params file holding several
nodes, the lifecycle driven by launch events (or by ``ros2 lifecycle set`` with
``autostart:=false``), ``ros2 param get``, ``ros2 topic echo``, ``ros2 node list`` and Ctrl-C
forwarded to the node, which exits cleanly."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ament_index_python.packages import get_package_share_directory
from node_harness import Probe, ros_env, wait_until
from PIL import Image
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.parameter import parameter_value_to_python

from robo_dopamine_ros.pipeline.params_file import flatten
from robo_dopamine_ros.pipeline.worker import EventKind
from robo_dopamine_ros.ros.demo import interrupt

pytestmark = pytest.mark.ros

PACKAGE = 'robo_dopamine_ros'
# Parameters every rclpy node has; they are not ours to list in config/default.yaml.
ROS_BUILTIN_PARAMETERS = {'use_sim_time', 'start_type_description_service'}
#: Generous: ros2 CLI calls start a Python interpreter each on a shared 2-core machine.
CLI_TIMEOUT_S = 60


@pytest.fixture(scope='module')
def share() -> Path:
    return Path(get_package_share_directory(PACKAGE))


def ros2(*args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run the real ``ros2`` command line on this test's DDS domain (loopback only)."""
    return subprocess.run(['ros2', *args], env=ros_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def ros2_discovering(expect: str, *args: str, tries: int = 4) -> subprocess.CompletedProcess[str]:
    """A ``ros2 ... --no-daemon`` query, repeated while its output lacks ``expect``: without the
    daemon each call discovers the graph anew, which a loaded machine may not finish in time."""
    for _ in range(tries):
        done = ros2(*args)
        if expect in done.stdout:
            break
    return done


class Launch:
    """``ros2 launch robo_dopamine_ros reward.launch.py ARGS`` as a subprocess."""

    def __init__(self, tmp_path: Path, **arguments: str) -> None:
        self.log = tmp_path / 'launch.log'
        command = ['ros2', 'launch', PACKAGE, 'reward.launch.py',
                   *(f'{k}:={v}' for k, v in arguments.items())]
        self.proc = subprocess.Popen(command, env=ros_env(), stdout=self.log.open('w'),
                                     stderr=subprocess.STDOUT, text=True)

    def text(self) -> str:
        return self.log.read_text()

    def interrupt(self) -> int:
        """Ctrl-C, as in a terminal; returns the launch's exit code."""
        return interrupt(self.proc, timeout_s=30)


@pytest.fixture
def scripted_params(share: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The installed default.yaml with the scripted test double (no model needed), as one
    section of a robot-wide file that also configures another node."""
    params = yaml.safe_load((share / 'config' / 'default.yaml').read_text())
    ours = params['/**']['ros__parameters']
    ours['model']['backend'] = 'scripted-test-double'
    ours['engine']['missing_goal'] = 'blank'       # episodes start without a goal image
    ours['use_sim_time'] = True         # the launch file must not override this
    robot = {**params, 'camera_driver': {'ros__parameters': {
        'sampling': {'interval_s': 5.0}, 'fps': 30}}}
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump(robot))
    return path, ours


@pytest.fixture
def probe_ns() -> Iterator[tuple[Probe, str]]:
    ns = f'/rdr_launch_{uuid.uuid4().hex[:8]}'
    probe = Probe(ns)
    probe.start()
    yield probe, ns
    probe.close()


def test_launch_file_is_the_installed_copy_of_the_source(repo_root: Path, share: Path) -> None:
    assert share == repo_root / 'install' / PACKAGE / 'share' / PACKAGE
    for name in ('launch/reward.launch.py', 'config/default.yaml', 'config/single_camera.yaml',
                 'config/demo.yaml', 'config/remote_server.yaml'):
        assert (share / name).read_bytes() == (repo_root / name).read_bytes(), name


def test_launch_show_args_lists_every_argument_with_its_default(share: Path) -> None:
    shown = ros2('launch', PACKAGE, 'reward.launch.py', '--show-args')
    assert shown.returncode == 0, shown.stderr
    defaults = dict(re.findall(r"\n    '(\w+)':\n(?:        .*\n)*?        \(default: '(.*)'\)",
                               shown.stdout))
    assert defaults == {
        'params_file': str(share / 'config' / 'default.yaml'), 'namespace': '',
        'use_sim_time': '', 'autostart': 'true', 'model': '', 'device': '', 'front_topic': '',
        'left_topic': '', 'right_topic': '', 'task': '', 'goal_image': ''}, shown.stdout
    assert 'overrides model.path' in shown.stdout


def test_launch_refuses_a_value_outside_an_arguments_choices(tmp_path: Path) -> None:
    launch = Launch(tmp_path, use_sim_time='yes')
    assert launch.proc.wait(timeout=CLI_TIMEOUT_S) != 0
    assert 'provided value "yes" is not valid' in launch.text()


def test_launch_runs_the_node_active_with_this_nodes_section_and_the_overrides(
        scripted_params: tuple[Path, dict[str, Any]], probe_ns: tuple[Probe, str],
        tmp_path: Path) -> None:
    params_file, ours = scripted_params
    probe, ns = probe_ns
    goal = tmp_path / 'goal.png'
    Image.new('RGB', (64, 48), (200, 40, 10)).save(goal)
    front = f'{ns}/front/image_raw'
    task = 'put the cup on the plate: left side'          # a colon: must stay a string
    launch = Launch(tmp_path, params_file=str(params_file), namespace=ns, device='cpu',
                    task=task, goal_image=str(goal), front_topic=front)
    fqn = f'{ns}/robo_dopamine'
    try:
        # Configured and activated by the launch file's lifecycle events.
        events = probe.wait_events(EventKind.READY, EventKind.START, timeout=90)
        assert events[-1].task == task

        listed = probe.node.create_client(ListParameters, f'{fqn}/list_parameters')
        assert listed.wait_for_service(timeout_sec=30)
        names = set(call(probe, listed, ListParameters.Request()).result.names)
        expected = flatten({k: v for k, v in ours.items() if k != 'use_sim_time'})
        expected.update({'model.device': 'cpu', 'task': task, 'goal_image': str(goal),
                         'cameras.front.topic': front, 'autostart': False})
        # config/default.yaml holds exactly the node's parameters: none missing, none unknown.
        names = {n for n in names if not n.startswith('qos_overrides.')}
        assert names - ROS_BUILTIN_PARAMETERS == set(expected)
        getter = probe.node.create_client(GetParameters, f'{fqn}/get_parameters')
        request = GetParameters.Request(names=[*expected, 'use_sim_time'])
        reply = call(probe, getter, request)
        got = dict(zip(request.names, map(parameter_value_to_python, reply.values), strict=True))
        # use_sim_time comes from the params file (the launch argument was not given).
        assert got == {**expected, 'use_sim_time': True}

        # The same through the real ros2 CLI.
        interval = ros2_discovering('value is', 'param', 'get', '--no-daemon', '--spin-time',
                                    '3', fqn, 'sampling.interval_s')
        assert interval.stdout.strip() == 'Double value is: 1.0', interval   # not 5.0
        state = ros2_discovering('[', 'lifecycle', 'get', '--no-daemon', '--spin-time', '3', fqn)
        assert state.stdout.strip() == 'active [3]', state
        nodes = ros2_discovering(fqn, 'node', 'list', '--no-daemon', '--spin-time', '3')
        assert fqn in nodes.stdout.split(), nodes
        echo = ros2_discovering('event: 0', 'topic', 'echo', '--once', '--qos-durability',
                                'transient_local', '--qos-reliability', 'reliable',
                                f'{fqn}/episode')
        assert echo.returncode == 0 and 'event: 0' in echo.stdout, echo    # READY, latched
        assert f"task: '{task}'" in echo.stdout, echo
    except (AssertionError, TimeoutError) as err:
        raise AssertionError(f'{err}\n--- launch log ---\n{launch.text()}') from err
    finally:
        code = launch.interrupt()
    # Ctrl-C reaches the node: it publishes SHUTDOWN and exits cleanly.
    probe.wait_events(EventKind.SHUTDOWN)
    assert code == 0, launch.text()
    assert re.search(r'process has finished cleanly \[pid \d+\]', launch.text()), launch.text()


def test_launch_autostart_false_leaves_the_lifecycle_to_the_operator(
        scripted_params: tuple[Path, dict[str, Any]], probe_ns: tuple[Probe, str],
        tmp_path: Path) -> None:
    params_file, _ = scripted_params
    probe, ns = probe_ns
    launch = Launch(tmp_path, params_file=str(params_file), namespace=ns, autostart='false',
                    task='open the drawer')
    fqn = f'{ns}/robo_dopamine'
    try:
        wait_until(lambda: ('robo_dopamine', ns) in
                   probe.node.get_node_names_and_namespaces(), 'the node', timeout=90)
        state = ros2_discovering('[', 'lifecycle', 'get', '--no-daemon', '--spin-time', '3', fqn)
        assert state.stdout.strip() == 'unconfigured [1]', state
        assert probe.snapshot('episode') == []
        for transition in ('configure', 'activate'):
            done = ros2_discovering('Transitioning', 'lifecycle', 'set', '--no-daemon',
                                    '--spin-time', '3', fqn, transition)
            assert 'Transitioning successful' in done.stdout, done
        probe.wait_events(EventKind.READY, EventKind.START)
    except (AssertionError, TimeoutError) as err:
        raise AssertionError(f'{err}\n--- launch log ---\n{launch.text()}') from err
    finally:
        assert launch.interrupt() == 0, launch.text()


def call(probe: Probe, client: Any, request: Any) -> Any:
    future = client.call_async(request)
    wait_until(future.done, 'a service reply')
    return future.result()
