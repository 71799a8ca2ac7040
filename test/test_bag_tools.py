"""play/record over real rclpy on loopback: what one plays the other records, byte for byte.

Each test uses its own ROS_DOMAIN_ID (150 + pid % 50) with discovery kept on localhost, and
topics under a random prefix. The library side runs in a private rclpy Context; the CLI side
runs as a child process from a temporary directory (so the installed package, with its
generated msgs, is the one imported). Every wait is a deadline on a condition; the only
timeouts are upper bounds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip('rclpy', reason='rclpy is not importable: no ROS 2 in this environment')

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from robo_dopamine_ros.msg import Reward  # noqa: E402

from robo_dopamine_ros.bags.msgtypes import typestore  # noqa: E402
from robo_dopamine_ros.bags.reader import BagReader, read_messages  # noqa: E402
from robo_dopamine_ros.bags.writer import write_episode_bag  # noqa: E402
from robo_dopamine_ros.core.errors import ConfigError  # noqa: E402
from robo_dopamine_ros.ros.bag_record import record  # noqa: E402
from robo_dopamine_ros.ros.bag_tools import message_class, play  # noqa: E402
from robo_dopamine_ros.synthetic.episode import render_episode  # noqa: E402
from robo_dopamine_ros.synthetic.spec import EpisodeSpec, SyntheticEpisode  # noqa: E402

# Topics under a per-test prefix: concurrent runs that happen to share a domain stay apart.
CAM_TOPICS = {'front': '/cam_high/image_raw', 'left': '/cam_left_wrist/image_raw',
              'right': '/cam_right_wrist/image_raw'}


@pytest.fixture
def ros_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process and its children on a private domain, discovery on loopback only."""
    monkeypatch.setenv('ROS_DOMAIN_ID', str(150 + os.getpid() % 50))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return dict(os.environ)


@pytest.fixture(scope='module')
def episode() -> SyntheticEpisode:
    return render_episode(EpisodeSpec(seed=5, num_frames=12, size=(96, 72), fps=10.0))


@pytest.fixture
def topics() -> dict[str, str]:
    """Camera -> this test's raw image topic."""
    prefix = f'/rdr_{uuid.uuid4().hex[:10]}'
    return {cam: prefix + topic for cam, topic in CAM_TOPICS.items()}


def cli(*args: str) -> list[str]:
    return [sys.executable, '-m', 'robo_dopamine_ros.cli', *args]


def stamp_ns(header: object) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec  # type: ignore[attr-defined]


def test_cli_play_is_recorded_exactly_with_clock(episode: SyntheticEpisode,
                                                 ros_env: dict[str, str], topics: dict[str, str],
                                                 tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'src', storage='mcap', topics=topics)
    images = list(topics.values())
    stop = threading.Event()
    result: dict[str, object] = {}

    def run_recorder() -> None:
        try:
            result['stats'] = record(tmp_path / 'rec', [*images, '/clock'],
                                     storage='sqlite3', stop=stop, discover_timeout_s=30.0)
        except ConfigError as e:
            result['error'] = e

    recorder = threading.Thread(target=run_recorder)
    recorder.start()
    try:
        player = subprocess.run(cli('play', str(bag), '--rate', '4', '--wait-for-subscribers',
                                    '30'), cwd=tmp_path, env=ros_env, capture_output=True,
                                text=True, timeout=90, check=False)
    finally:
        stop.set()   # the player has exited: its reliable data is acknowledged
        recorder.join(timeout=30)
    assert player.returncode == 0, player.stderr
    assert 'published 36 messages on 3 topics' in player.stdout
    assert 'error' not in result, result
    stats = result['stats']
    assert stats.counts == {**dict.fromkeys(images, 12), '/clock': stats.counts['/clock']}
    cam_of = {topic: cam for cam, topic in topics.items()}
    seen = dict.fromkeys(images, 0)
    clock = []
    for m in read_messages(tmp_path / 'rec'):
        if m.topic == '/clock':
            clock.append(m.msg.clock.sec * 1_000_000_000 + m.msg.clock.nanosec)
            continue
        i = seen[m.topic]
        assert stamp_ns(m.msg.header) == episode.stamps_ns[i]
        assert np.array_equal(m.msg.data.reshape(72, 96, 3), episode.frames[cam_of[m.topic]][i])
        seen[m.topic] += 1
    assert seen == dict.fromkeys(images, 12)
    # /clock follows the bag time: within the bag and never backwards.
    assert clock, 'no /clock recorded'
    assert all(episode.stamps_ns[0] <= c <= episode.stamps_ns[-1] + 1 for c in clock)
    assert clock == sorted(clock)


def test_play_is_recorded_by_cli_until_sigint(episode: SyntheticEpisode, ros_env: dict[str, str],
                                              topics: dict[str, str], tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'src', storage='sqlite3',
                            transport='compressed', topics=topics)
    compressed = [f'{t}/compressed' for t in topics.values()]
    with subprocess.Popen(cli('record', str(tmp_path / 'rec'), '--topics', *compressed,
                              '--discover-timeout', '30'),
                          cwd=tmp_path, env=ros_env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as recorder:
        try:
            stats = play(bag, rate=5.0, clock=False, wait_for_subscribers_s=30.0)
            recorder.send_signal(signal.SIGINT)
            out, err = recorder.communicate(timeout=30)
        finally:
            if recorder.poll() is None:
                recorder.kill()
    assert recorder.returncode == 0, err
    assert stats.subscribers == dict.fromkeys(compressed, 1)
    assert stats.published == dict.fromkeys(compressed, 12)
    assert (stats.clock_msgs, stats.loops, stats.stopped, stats.all_acked) == (0, 1, False, True)
    assert all(f'{t} 12' in out for t in compressed)
    source = {(m.topic, stamp_ns(m.msg.header)): m.msg.data.tobytes()
              for m in read_messages(bag)}
    recorded = {(m.topic, stamp_ns(m.msg.header)): m.msg.data.tobytes()
                for m in read_messages(tmp_path / 'rec')}
    assert recorded == source   # same JPEG bytes: nothing was decoded on the way
    with BagReader(tmp_path / 'rec') as reader:   # the player's QoS is kept, as rosbag2 does
        qos = reader.offered_qos[compressed[0]]
        assert [(q.reliability.name, q.durability.name) for q in qos] == [('RELIABLE',
                                                                           'VOLATILE')]


def test_looping_play_is_recorded_and_a_silent_topic_is_reported(
        episode: SyntheticEpisode, ros_env: dict[str, str], topics: dict[str, str],
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bag = write_episode_bag(episode, tmp_path / 'src', include_wrists=False, topics=topics)
    front, silent = topics['front'], topics['left']
    stop = threading.Event()
    result = {}

    def run() -> None:
        result['stats'] = play(bag, rate=20.0, loop=True, wait_for_subscribers_s=0.0,
                               stop=stop)

    player = threading.Thread(target=run)
    player.start()
    try:
        stats = record(tmp_path / 'rec', [front, silent], duration_s=2.0,
                       discover_timeout_s=1.5)
    finally:
        stop.set()
        player.join(timeout=10)
    assert stats.missing == [silent]
    assert stats.msgtypes == {front: 'sensor_msgs/msg/Image'}
    assert stats.counts[front] > 12   # more than one pass of the bag
    assert f"recording without ['{silent}']" in caplog.text
    played = result['stats']
    assert played.stopped and played.loops >= 2 and played.clock_msgs > 0
    assert played.subscribers == {front: 0}   # it did not wait for any


def test_record_without_publishers_fails_and_leaves_no_bag(ros_env: dict[str, str],
                                                           tmp_path: Path) -> None:

    with pytest.raises(ConfigError, match=r"no publisher appeared within 0\.3 s on \['/rdr_no"):
        record(tmp_path / 'rec', ['/rdr_nobody_publishes_this'], discover_timeout_s=0.3)
    assert not (tmp_path / 'rec').exists()


def test_bag_tools_argument_errors(episode: SyntheticEpisode, ros_env: dict[str, str],
                                   tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'src', include_wrists=False)
    with pytest.raises(ConfigError, match=r'rate must be > 0, got 0\.0'):
        play(bag, rate=0.0)
    with pytest.raises(ConfigError, match=r"topics \['/x'\] are not in bag"):
        play(bag, topics=['/x'])
    with pytest.raises(ConfigError, match='bag does not exist'):
        play(tmp_path / 'missing')
    with pytest.raises(ConfigError, match='exists already'):
        record(bag, ['/x'])
    with pytest.raises(ConfigError, match='record needs at least one topic'):
        record(tmp_path / 'rec', [])
    with pytest.raises(ConfigError, match="'nope/msg/X' is not importable"):
        message_class('nope/msg/X')
    assert message_class('sensor_msgs/msg/Image').__name__ == 'Image'


def test_custom_msg_cdr_is_interchangeable_with_rclpy() -> None:
    # Not byte-identical (alignment padding may differ), but each side reads the other's.

    msg = Reward(episode_id='ep-3', step=4, reward=0.5, potential_before=0.25,
                 potential_after=0.75, gamma=1.0, r_gold=0.0, done=False, terminal=False,
                 valid=True, reason='')
    msg.header.stamp.sec, msg.header.frame_id = 1_700_000_000, 'cam_high'
    store = typestore()
    ours = store.deserialize_cdr(serialize_message(msg), 'robo_dopamine_ros/msg/Reward')
    assert (ours.episode_id, ours.step, ours.reward, ours.header.frame_id) == ('ep-3', 4, 0.5,
                                                                               'cam_high')
    back = bytes(store.serialize_cdr(ours, 'robo_dopamine_ros/msg/Reward'))
    assert deserialize_message(back, Reward) == msg
