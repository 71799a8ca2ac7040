"""rosbags helpers: episode bags in both storages and transports, our msgs in the typestore."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from robo_dopamine_ros.core.errors import ConfigError

pytest.importorskip('rosbags')
cv2 = pytest.importorskip('cv2')

from robo_dopamine_ros.bags.msgtypes import msg_dir, typestore  # noqa: E402  (after the skips)
from robo_dopamine_ros.bags.reader import (  # noqa: E402
    BagReader,
    load_ground_truth,
    read_messages,
)
from robo_dopamine_ros.bags.writer import JPEG_FORMAT, camera_topics, write_episode_bag  # noqa: E402
from robo_dopamine_ros.cli import main  # noqa: E402
from robo_dopamine_ros.core.names import DEFAULT_TOPICS, GOAL_FILE  # noqa: E402
from robo_dopamine_ros.synthetic.episode import render_episode  # noqa: E402
from robo_dopamine_ros.synthetic.spec import EpisodeSpec, SyntheticEpisode  # noqa: E402

CAM_OF_TOPIC = {topic: cam for cam, topic in DEFAULT_TOPICS.items()}


@pytest.fixture(scope='module')
def episode() -> SyntheticEpisode:
    return render_episode(EpisodeSpec(seed=4, num_frames=8, size=(64, 48), fps=10.0))


def plain(msg: object) -> object:
    """A rosbags message as nested dicts and lists, comparable across typestores."""
    if dataclasses.is_dataclass(msg):
        return {f.name: plain(getattr(msg, f.name)) for f in dataclasses.fields(msg)}
    return msg.tolist() if isinstance(msg, np.ndarray) else msg


def stamp_ns(header: object) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec  # type: ignore[attr-defined]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_episode_bag_raw_images_read_back_pixel_exact(episode: SyntheticEpisode, tmp_path: Path,
                                                      storage: str) -> None:
    bag = write_episode_bag(episode, tmp_path / 'bag', storage=storage)
    assert (bag / f'bag.{"mcap" if storage == "mcap" else "db3"}').is_file()
    with BagReader(bag) as reader:
        assert reader.topics == {t: 'sensor_msgs/msg/Image' for t in DEFAULT_TOPICS.values()}
        assert reader.message_counts == dict.fromkeys(DEFAULT_TOPICS.values(), 8)
        assert reader.start_ns == episode.stamps_ns[0]
    seen = {cam: 0 for cam in DEFAULT_TOPICS}
    for m in read_messages(bag):
        cam = CAM_OF_TOPIC[m.topic]
        i = seen[cam]
        assert m.stamp_ns == stamp_ns(m.msg.header) == episode.stamps_ns[i]
        assert m.msg.header.frame_id == {'front': 'cam_high', 'left': 'cam_left_wrist',
                                         'right': 'cam_right_wrist'}[cam]
        assert (m.msg.encoding, m.msg.height, m.msg.width, m.msg.step) == ('rgb8', 48, 64, 192)
        assert np.array_equal(m.msg.data.reshape(48, 64, 3), episode.frames[cam][i])
        seen[cam] += 1
    assert seen == dict.fromkeys(DEFAULT_TOPICS, 8)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_episode_bag_compressed_images_decode_close(episode: SyntheticEpisode, tmp_path: Path,
                                                    storage: str) -> None:
    bag = write_episode_bag(episode, tmp_path / 'bag', storage=storage, transport='compressed',
                            jpeg_quality=95)
    messages = list(read_messages(bag, topics=['/cam_left_wrist/image_raw/compressed']))
    assert [m.stamp_ns for m in messages] == list(episode.stamps_ns)
    for i, m in enumerate(messages):
        assert m.msgtype == 'sensor_msgs/msg/CompressedImage'
        assert m.msg.format == JPEG_FORMAT
        assert stamp_ns(m.msg.header) == episode.stamps_ns[i]
        rgb = cv2.cvtColor(cv2.imdecode(m.msg.data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        diff = np.abs(rgb.astype(np.int16) - episode.frames['left'][i].astype(np.int16))
        assert diff.mean() < 5.0   # quality 95 on sensor noise


def test_episode_bag_single_camera_and_custom_topics(episode: SyntheticEpisode,
                                                     tmp_path: Path) -> None:
    single = write_episode_bag(episode, tmp_path / 'single', include_wrists=False)
    with BagReader(single) as reader:
        assert reader.topics == {'/cam_high/image_raw': 'sensor_msgs/msg/Image'}
    custom = write_episode_bag(episode, tmp_path / 'custom', transport='compressed',
                               topics={'front': '/a/image', 'right': '/b/image'})
    with BagReader(custom) as reader:
        assert sorted(reader.topics) == ['/a/image/compressed', '/b/image/compressed']


def test_episode_bag_carries_ground_truth_and_goal(episode: SyntheticEpisode,
                                                   tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'bag', storage='sqlite3')
    gt = load_ground_truth(bag)
    assert gt['progress'] == list(episode.progress)
    assert gt['stamps_ns'] == list(episode.stamps_ns)
    assert gt['keyframes'] == episode.keyframes
    assert gt['topics'] == DEFAULT_TOPICS and gt['transport'] == 'raw'
    goal = cv2.cvtColor(cv2.imread(str(bag / GOAL_FILE)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(goal, episode.goal)


def test_custom_msgs_round_trip_through_the_typestore(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer

    store = typestore()
    types = store.types
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=1_700_000_123, nanosec=456_000_000),
        frame_id='cam_high')
    before = types['builtin_interfaces/msg/Time'](sec=1_700_000_122, nanosec=956_000_000)
    progress = types['robo_dopamine_ros/msg/Progress'](
        header=header, before_stamp=before, episode_id='ep-7', step=3, task='stack',
        progress=0.75, progress_raw=0.875, modes=['incremental', 'forward'],
        mode_progress=np.array([0.5, 0.75], dtype=np.float32),
        mode_progress_raw=np.array([0.5, 1.125], dtype=np.float32),
        mode_hop=np.array([0.25, -0.125], dtype=np.float32),
        mode_hop_raw=np.array([0.25, math.nan], dtype=np.float32),
        raw_answers=['<score>+25%</score>', 'x'], parse_status=np.array([0, 2], dtype=np.uint8),
        valid=False, status='partial', reason='parse failed', task_status='stalled',
        consistency_weight=math.nan, latency_s=1.5, model_id='tiny', view_layout='three-view')
    reward = types['robo_dopamine_ros/msg/Reward'](
        header=header, before_stamp=before, episode_id='ep-7', step=3, reward=-0.25,
        potential_before=0.5, potential_after=0.25, gamma=1.0, r_gold=0.0, done=False,
        terminal=False, valid=True, reason='')
    event_cls = types['robo_dopamine_ros/msg/EpisodeEvent']
    assert (event_cls.READY, event_cls.DONE, event_cls.SHUTDOWN) == (0, 3, 6)
    event = event_cls(header=header, event=event_cls.TASK_CHANGED, episode_id='ep-8',
                      previous_episode_id='ep-7', task='stack', detail='set_task')
    msgs = {'/p': progress, '/r': reward, '/e': event}
    with Writer(tmp_path / 'bag', version=9) as writer:
        for topic, msg in msgs.items():
            conn = writer.add_connection(topic, msg.__msgtype__, typestore=store)
            writer.write(conn, 5, store.serialize_cdr(msg, msg.__msgtype__))
    got = {m.topic: m.msg for m in read_messages(tmp_path / 'bag')}
    # The reader builds its own classes from the definitions stored in the bag: compare values.
    assert plain(got['/e']) == plain(event) and plain(got['/r']) == plain(reward)
    p = got['/p']
    assert (p.episode_id, p.step, p.progress, p.raw_answers) == ('ep-7', 3, 0.75,
                                                                 ['<score>+25%</score>', 'x'])
    assert p.mode_hop_raw[0] == np.float32(0.25) and math.isnan(p.mode_hop_raw[1])
    assert p.parse_status.tolist() == [0, 2] and math.isnan(p.consistency_weight)


def test_typestore_hashes_match_the_rosidl_build(repo_root: Path) -> None:
    share = repo_root / 'install' / 'robo_dopamine_ros' / 'share' / 'robo_dopamine_ros' / 'msg'
    if not share.is_dir():
        pytest.skip('no colcon install/: run make build')
    store = typestore()
    for name in ('Progress', 'Reward', 'EpisodeEvent'):
        info = json.loads((share / f'{name}.json').read_text(encoding='utf-8'))
        want = next(h['hash_string'] for h in info['type_hashes']
                    if h['type_name'] == f'robo_dopamine_ros/msg/{name}')
        assert store.hash_rihs01(f'robo_dopamine_ros/msg/{name}') == want


def test_msg_dir_holds_the_package_msg_files(repo_root: Path) -> None:
    for name in ('Progress', 'Reward', 'EpisodeEvent'):
        assert (msg_dir() / f'{name}.msg').read_bytes() == \
            (repo_root / 'msg' / f'{name}.msg').read_bytes()


def test_typestore_without_msg_files_keeps_the_standard_types(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import robo_dopamine_ros.bags.msgtypes as bags

    def missing() -> Path:
        raise ConfigError('cannot find robo_dopamine_ros .msg files')

    monkeypatch.setattr(bags, 'msg_dir', missing)
    store = bags.typestore.__wrapped__()   # uncached: the shared one is left alone
    assert 'sensor_msgs/msg/Image' in store.types
    assert 'robo_dopamine_ros/msg/Progress' not in store.types
    assert 'types are not in the typestore' in caplog.text


def test_camera_topics_compressed_appends_the_transport() -> None:
    assert camera_topics('compressed', {'front': '/cam/'}) == {'front': '/cam/compressed'}
    with pytest.raises(ConfigError, match=r"unknown camera names \['top'\]"):
        camera_topics('raw', {'top': '/x'})
    with pytest.raises(ConfigError, match=r"transport must be one of .*'theora'"):
        camera_topics('theora')


def test_bag_errors_are_config_errors(episode: SyntheticEpisode, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='bag does not exist'):
        BagReader(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ConfigError, match='cannot read bag'), BagReader(tmp_path / 'empty'):
        pass
    (tmp_path / 'old.bag').write_bytes(b'#ROSBAG V2.0\n')
    with pytest.raises(ConfigError, match='ROS 1 bag'):
        BagReader(tmp_path / 'old.bag')
    bag = write_episode_bag(episode, tmp_path / 'bag', include_wrists=False)
    with pytest.raises(ConfigError, match='exists already'):
        write_episode_bag(episode, bag)
    with pytest.raises(ConfigError, match=r"topics \['/nope'\] are not in bag"):
        list(read_messages(bag, ['/nope']))
    with pytest.raises(ConfigError, match='not open'):
        _ = BagReader(bag).topics
    with pytest.raises(ConfigError, match=r"storage must be one of .*'rosbag1'"):
        write_episode_bag(episode, tmp_path / 'x', storage='rosbag1')
    with pytest.raises(ConfigError, match='jpeg_quality must be in'):
        write_episode_bag(episode, tmp_path / 'x', transport='compressed', jpeg_quality=0)
    with pytest.raises(ConfigError, match='not a synthetic episode bag'):
        load_ground_truth(tmp_path / 'empty')


def test_cli_synth_writes_a_bag_with_labels(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'ep'
    assert main(['synth', str(out), '--outcome', 'stall', '--frames', '6', '--size', '64x48',
                 '--storage', 'sqlite3', '--compressed', '--single-camera']) == 0
    assert 'outcome stall' in capsys.readouterr().out
    with BagReader(out) as reader:
        assert reader.message_counts == {'/cam_high/image_raw/compressed': 6}
    assert load_ground_truth(out)['outcome'] == 'stall'
    assert main(['synth', str(out)]) == 1
    assert 'exists already' in capsys.readouterr().err
