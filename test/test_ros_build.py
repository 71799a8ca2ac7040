"""The colcon-built package: generated msgs beside our own modules, DDS round trip, launcher.

Every ROS process here is a child started with the environment of `scripts/env.sh` (venv plus
install/), DDS discovery forced onto loopback, and bounded waits throughout.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(importlib.util.find_spec('rclpy') is None,
                       reason='rclpy is not importable: no ROS 2 in this environment'),
]

_INSPECT = """
import json, sys
import ament_index_python
import robo_dopamine_ros
import robo_dopamine_ros.core.prompt as prompt
from robo_dopamine_ros.msg import Progress, Reward
print(json.dumps({
    'package': robo_dopamine_ros.__file__,
    'prompt': prompt.__file__,
    'msg': sys.modules['robo_dopamine_ros.msg'].__file__,
    'share': ament_index_python.get_package_share_directory('robo_dopamine_ros'),
    'progress': Progress.get_fields_and_field_types(),
    'reward': Reward.get_fields_and_field_types(),
    'parse': [Progress.PARSE_OK, Progress.PARSE_LENIENT, Progress.PARSE_FAILED,
              Progress.PARSE_ZEROED, Progress.PARSE_SKIPPED],
}))
"""

# The listener reports the received Progress message as plain JSON-able data.
_TO_DICT = """
def to_dict(msg):
    def stamp(t):
        return [t.sec, t.nanosec]
    out = {}
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if name == 'header':
            value = {'stamp': stamp(value.stamp), 'frame_id': value.frame_id}
        elif name == 'before_stamp':
            value = stamp(value)
        elif not isinstance(value, (str, int, float, bool)):
            value = list(value)
        out[name] = value
    return out
"""

_SUBSCRIBER = _TO_DICT + """
import json, sys, time
import rclpy
from robo_dopamine_ros.msg import Progress

topic, timeout = sys.argv[1], float(sys.argv[2])
rclpy.init()
node = rclpy.create_node('rdr_test_listener')
received = []
node.create_subscription(Progress, topic, received.append, 10)
deadline = time.monotonic() + timeout
while not received and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
if received:
    print(json.dumps(to_dict(received[0])), flush=True)
node.destroy_node()
rclpy.try_shutdown()
sys.exit(0 if received else 3)
"""

_PUBLISHER = """
import sys, time
import rclpy
from robo_dopamine_ros.msg import Progress

topic, timeout = sys.argv[1], float(sys.argv[2])
rclpy.init()
node = rclpy.create_node('rdr_test_talker')
pub = node.create_publisher(Progress, topic, 10)
msg = Progress()
msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000123, 456000000
msg.header.frame_id = 'cam_high'
msg.before_stamp.sec, msg.before_stamp.nanosec = 1700000122, 956000000
msg.episode_id, msg.step, msg.task = 'ep-7', 3, 'put the cup on the plate'
msg.progress, msg.progress_raw = 0.75, 0.875
msg.modes = ['incremental', 'forward', 'backward']
msg.mode_progress = [0.5, 0.75, 1.0]
msg.mode_progress_raw = [0.5, 0.75, 1.125]
msg.mode_hop = [0.25, -0.125, 0.0]
msg.mode_hop_raw = [0.25, -0.125, float('nan')]
msg.raw_answers = ['<score>+25%</score>', '<score>75%</score>', 'no score']
msg.parse_status = [Progress.PARSE_OK, Progress.PARSE_LENIENT, Progress.PARSE_ZEROED]
msg.valid, msg.status, msg.reason, msg.task_status = True, 'ok', '', 'stalled'
msg.consistency_weight, msg.latency_s = float('nan'), 1.5
msg.model_id, msg.view_layout = 'local/tiny-grm', 'three-view'
deadline = time.monotonic() + timeout
while node.count_subscribers(topic) < 1:
    if time.monotonic() > deadline:
        sys.exit(2)
    time.sleep(0.05)
# Reliable QoS, but a reader can still be mid-discovery on its side: publish until the listener,
# which exits after its first message, has left.
while node.count_subscribers(topic) > 0:
    if time.monotonic() > deadline:
        sys.exit(4)
    pub.publish(msg)
    time.sleep(0.2)
node.destroy_node()
rclpy.try_shutdown()
"""

EXPECTED_PROGRESS_FIELDS = {
    'header': 'std_msgs/Header', 'before_stamp': 'builtin_interfaces/Time',
    'episode_id': 'string', 'step': 'uint32', 'task': 'string',
    'progress': 'float', 'progress_raw': 'float', 'modes': 'sequence<string>',
    'mode_progress': 'sequence<float>', 'mode_progress_raw': 'sequence<float>',
    'mode_hop': 'sequence<float>', 'mode_hop_raw': 'sequence<float>',
    'raw_answers': 'sequence<string>', 'parse_status': 'sequence<uint8>',
    'valid': 'boolean', 'status': 'string', 'reason': 'string', 'task_status': 'string',
    'consistency_weight': 'float',
    'latency_s': 'float', 'model_id': 'string', 'view_layout': 'string',
}
EXPECTED_REWARD_FIELDS = {
    'header': 'std_msgs/Header', 'before_stamp': 'builtin_interfaces/Time',
    'episode_id': 'string', 'step': 'uint32', 'reward': 'float', 'potential_before': 'float',
    'potential_after': 'float', 'gamma': 'float', 'r_gold': 'float', 'done': 'boolean',
    'terminal': 'boolean',
    'valid': 'boolean', 'reason': 'string',
}


@pytest.fixture(scope='module')
def ros_env(repo_root: Path) -> dict[str, str]:
    """The environment `scripts/env.sh` gives (venv + install/), DDS kept on loopback."""
    if not (repo_root / 'install' / 'setup.bash').is_file():
        pytest.fail('no colcon install/: run `make setup` (scripts/build.sh) first')
    base = {k: v for k, v in os.environ.items() if k != '_ROS_WHEELS_BOOTSTRAP_COMPLETE'}
    proc = subprocess.run(['bash', '-c', '. scripts/env.sh >&2 && env -0'], cwd=repo_root,
                          env=base, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    env = dict(item.split('=', 1) for item in proc.stdout.decode().split('\0') if '=' in item)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('ROS_DOMAIN_ID', '61')
    return env


def python_in(env: dict[str, str]) -> str:
    return str(Path(env['VIRTUAL_ENV']) / 'bin' / 'python')


def test_installed_package_holds_msgs_and_own_modules(repo_root: Path,
                                                      ros_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    proc = subprocess.run([python_in(ros_env), '-c', _INSPECT], cwd=tmp_path, env=ros_env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    prefix = repo_root / 'install' / 'robo_dopamine_ros'
    site = prefix / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}'
    package_dir = site / 'site-packages' / 'robo_dopamine_ros'
    assert Path(info['package']) == package_dir / '__init__.py'
    assert Path(info['prompt']) == package_dir / 'core' / 'prompt.py'
    assert Path(info['msg']) == package_dir / 'msg' / '__init__.py'
    assert Path(info['share']) == prefix / 'share' / 'robo_dopamine_ros'
    assert info['progress'] == EXPECTED_PROGRESS_FIELDS
    assert info['reward'] == EXPECTED_REWARD_FIELDS
    assert info['parse'] == [0, 1, 2, 3, 4]


def test_progress_round_trips_between_two_processes_over_dds(ros_env: dict[str, str],
                                                             tmp_path: Path) -> None:
    topic = f'/rdr_test_{uuid.uuid4().hex[:12]}/progress'
    timeout = '30'
    python = python_in(ros_env)
    with subprocess.Popen([python, '-c', _SUBSCRIBER, topic, timeout], cwd=tmp_path,
                          env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as listener, \
         subprocess.Popen([python, '-c', _PUBLISHER, topic, timeout], cwd=tmp_path,
                          env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as talker:
        try:
            out, err = listener.communicate(timeout=60)
            _, talker_err = talker.communicate(timeout=60)
        finally:
            for proc in (listener, talker):
                if proc.poll() is None:
                    proc.kill()
    assert listener.returncode == 0, f'listener rc={listener.returncode}: {err}'
    assert talker.returncode == 0, f'talker rc={talker.returncode}: {talker_err}'
    got = json.loads(out)
    assert math.isnan(got['mode_hop_raw'][2]) and math.isnan(got['consistency_weight'])
    got['mode_hop_raw'][2] = got['consistency_weight'] = None
    assert got == {
        'header': {'stamp': [1700000123, 456000000], 'frame_id': 'cam_high'},
        'before_stamp': [1700000122, 956000000],
        'episode_id': 'ep-7', 'step': 3, 'task': 'put the cup on the plate',
        'progress': 0.75, 'progress_raw': 0.875,
        'modes': ['incremental', 'forward', 'backward'],
        'mode_progress': [0.5, 0.75, 1.0], 'mode_progress_raw': [0.5, 0.75, 1.125],
        'mode_hop': [0.25, -0.125, 0.0], 'mode_hop_raw': [0.25, -0.125, None],
        'raw_answers': ['<score>+25%</score>', '<score>75%</score>', 'no score'],
        'parse_status': [0, 1, 3], 'valid': True, 'status': 'ok', 'reason': '',
        'task_status': 'stalled',
        'consistency_weight': None, 'latency_s': 1.5,
        'model_id': 'local/tiny-grm', 'view_layout': 'three-view',
    }


def test_installed_launcher_prints_help(repo_root: Path, ros_env: dict[str, str],
                                        tmp_path: Path) -> None:
    launcher = repo_root / 'install' / 'robo_dopamine_ros' / 'lib' / 'robo_dopamine_ros' / \
        'robo-dopamine'
    proc = subprocess.run([str(launcher), '--help'], cwd=tmp_path, env=ros_env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('usage: robo-dopamine')
