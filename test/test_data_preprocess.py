"""Step 0 on the bundled real demo episode and on a rosbag2 episode, malformed annotations,
and the three data steps through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from robo_dopamine_ros.cli import main
from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.files.frames import demo_episode_dir, open_frames, read_image
from robo_dopamine_ros.training.keyframes import zero_hop_afters
from robo_dopamine_ros.training.preprocess import PreprocessConfig, preprocess
from robo_dopamine_ros.training.sources import bag_episode, discover

pytest.importorskip('cv2')

CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
# The demo's keyframe boundaries: with sample_factor 5 every segment gets its two ends only.
DEMO_IDS = [1, 10, 14, 19, 25, 31, 33, 38, 40, 45, 48, 56, 61, 67, 74, 79, 84]


def jpeg_ids(folder: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix('frame_')) for p in folder.glob('frame_*.jpg'))


def test_preprocess_demo_episode_files(demo_dataset: Path) -> None:
    episode = demo_dataset / 'episode_demo_episode'
    ids = json.loads((episode / 'sample_frames.json').read_text())
    assert ids == [f'{i:06d}' for i in DEMO_IDS]
    demo = demo_episode_dir()
    assert json.loads((episode / 'annotated_keyframes.json').read_text()) == json.loads(
        (demo / 'annotated_keyframes.json').read_text())
    instructions = json.loads((demo / 'task_instruction.json').read_text())
    assert json.loads((episode / 'task_instruction.json').read_text()) == instructions
    assert json.loads((demo_dataset / 'task_instruction.json').read_text()) == instructions


def test_preprocess_extracts_only_the_frames_samples_use(demo_dataset: Path) -> None:
    wanted = sorted(set(DEMO_IDS).union(*zero_hop_afters(DEMO_IDS)))
    assert len(wanted) == 47  # of 86 frames per camera
    for cam in CAMERAS:
        assert jpeg_ids(demo_dataset / 'episode_demo_episode' / cam) == wanted


def test_preprocess_frames_are_the_right_video_frames(demo_dataset: Path) -> None:
    with open_frames(demo_episode_dir() / 'cam_left_wrist.mp4') as video:
        jpeg = read_image(demo_dataset / 'episode_demo_episode' / 'cam_left_wrist' /
                          'frame_000045.jpg').astype(int)
        errors = {i: np.abs(jpeg - video.read(i)).mean() for i in (44, 45, 46)}
    assert errors[45] < 2.0  # JPEG noise only
    assert errors[45] < min(errors[44], errors[46])


def raw_episode(tmp_path: Path, keyframes: list[dict[str, int]]) -> Path:
    """An upstream raw directory whose episode links the demo videos, with these keyframes."""
    episode = tmp_path / 'raw' / 'episode_001'
    episode.mkdir(parents=True)
    for cam in CAMERAS:
        (episode / f'{cam}.mp4').symlink_to(demo_episode_dir() / f'{cam}.mp4')
    (episode / 'annotated_keyframes.json').write_text(json.dumps(keyframes))
    return tmp_path / 'raw'


def test_preprocess_rerun_replaces_the_extracted_frames(tmp_path: Path) -> None:
    raw = raw_episode(tmp_path, [{'start_frame_id': 0, 'end_frame_id': 40},
                                 {'start_frame_id': 40, 'end_frame_id': 80}])
    out = tmp_path / 'train_data'
    for factor, ids in ((20, [0, 20, 40, 60, 80]), (40, [0, 40, 80])):
        summary, = preprocess(discover(raw), PreprocessConfig(out, factor, workers=1,
                                                              progress=False))
        assert (summary.num_frames, summary.sample_frames) == (86, len(ids))
        wanted = sorted(set(ids).union(*zero_hop_afters(ids)))
        assert jpeg_ids(out / 'episode_001' / 'cam_high') == wanted
    # No task_instruction.json anywhere: upstream's default task.
    assert json.loads((out / 'task_instruction.json').read_text()) == ['perform the task']


@pytest.mark.parametrize('keyframes, message', [
    ([{'start_frame_id': 0, 'end_frame_id': 40}, {'start_frame_id': 30, 'end_frame_id': 80}],
     r'annotated_keyframes.json: segment 2 .* overlaps segment 1'),
    ([{'start_frame_id': 0, 'end_frame_id': 86}],
     r'annotated_keyframes.json: segment 1 .* out of range: the video has 86 frames'),
])
def test_preprocess_malformed_keyframes_fail_before_extracting(
        tmp_path: Path, keyframes: list[dict[str, int]], message: str) -> None:
    raw = raw_episode(tmp_path, keyframes)
    with pytest.raises(ConfigError, match=message):
        preprocess(discover(raw), PreprocessConfig(tmp_path / 'out', workers=1, progress=False))
    assert not (tmp_path / 'out').exists()          # not even an empty folder


def test_preprocess_rejects_duplicate_episode_names(tmp_path: Path) -> None:
    raw = raw_episode(tmp_path, [{'start_frame_id': 0, 'end_frame_id': 80}])
    with pytest.raises(ConfigError, match=r"\['episode_001'\] more than once"):
        preprocess(discover(raw) * 2, PreprocessConfig(tmp_path / 'out', progress=False))


def test_preprocess_bad_sample_factor() -> None:
    with pytest.raises(ConfigError, match='sample_factor must be a positive integer'):
        PreprocessConfig(Path('out'), sample_factor=0)


def test_preprocess_rosbag_episode_frames_are_the_synchronized_sets(tmp_path: Path) -> None:
    pytest.importorskip('rosbags')
    from robo_dopamine_ros.bags.writer import write_episode_bag
    from robo_dopamine_ros.synthetic.episode import render_episode
    from robo_dopamine_ros.synthetic.spec import EpisodeSpec

    episode = render_episode(EpisodeSpec(seed=2, num_frames=24, fps=10.0))
    bag = write_episode_bag(episode, tmp_path / 'demo_bag')
    (bag / 'annotated_keyframes.json').write_text(json.dumps(episode.keyframes))
    (bag / 'task_instruction.json').write_text(json.dumps([episode.task]))
    out = tmp_path / 'train_data'
    summary, = preprocess([bag_episode(bag)], PreprocessConfig(out, 2, workers=1,
                                                               progress=False))
    assert (summary.name, summary.num_frames) == ('episode_demo_bag', 24)
    ids = [int(i) for i in json.loads((out / 'episode_demo_bag' / 'sample_frames.json')
                                      .read_text())]
    assert ids[0] == episode.keyframes[0]['start_frame_id'] and ids[-1] == 23
    for cam, view in zip(CAMERAS, ('front', 'left', 'right'), strict=True):
        frame = ids[len(ids) // 2]
        jpeg = read_image(out / 'episode_demo_bag' / cam / f'frame_{frame:06d}.jpg')
        assert np.abs(jpeg.astype(int) - episode.frames[view][frame]).mean() < 3.0
    assert json.loads((out / 'task_instruction.json').read_text()) == [episode.task]


def test_bag_episode_needs_three_topics(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='needs 3 image topics'):
        bag_episode(tmp_path, topics=['/front'])
    with pytest.raises(ConfigError, match='bag does not exist'):
        bag_episode(tmp_path / 'none')


def test_cli_data_steps_on_the_demo_episode(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'train_data'
    assert main(['data', 'preprocess', '--raw', str(demo_episode_dir()), '--out', str(out),
                 '--sample-factor', '5', '--workers', '1', '-q']) == 0
    assert main(['data', 'generate', str(out), '--max-sample-num', '20', '--workers', '1',
                 '-q']) == 0
    assert main(['data', 'postprocess', str(out), '-q']) == 0
    printed = capsys.readouterr().out
    assert 'episode_demo_episode: 86 frames, 17 sampled, 141 JPEGs written' in printed
    assert 'episode_demo_episode: 20 samples' in printed
    assert '20 samples merged and shuffled' in printed
    final = json.loads((out / 'train_jsons' / 'finetune_data_final.json').read_text())
    assert len(final) == 20
    assert all((tmp_path / path).is_file() for record in final for path in record['image'])


def test_cli_data_preprocess_reports_malformed_annotations(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = raw_episode(tmp_path, [{'start_frame_id': 5, 'end_frame_id': 5}])
    assert main(['data', 'preprocess', '--raw', str(raw), '--out', str(tmp_path / 'o'),
                 '--workers', '1', '-q']) == 1
    assert 'is empty or reversed' in capsys.readouterr().err


def test_bag_frames_with_padded_rows_decode_like_the_node(tmp_path: Path) -> None:
    """Rows padded past width x 3 (``step`` larger, as some drivers send) are not shifted."""
    pytest.importorskip('rosbags')
    from rosbags.rosbag2 import Writer

    from robo_dopamine_ros.bags.msgtypes import IMAGE, typestore
    from robo_dopamine_ros.core.names import DEFAULT_TOPICS
    from robo_dopamine_ros.training.sources import _BagFrames

    store = typestore()
    rng = np.random.default_rng(3)
    pictures = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(2)]
    bag = tmp_path / 'padded'
    topics = [DEFAULT_TOPICS[c] for c in ('front', 'left', 'right')]
    with Writer(bag, version=9) as writer:
        conns = [writer.add_connection(t, IMAGE, typestore=store) for t in topics]
        for i, rgb in enumerate(pictures):
            stamp = (i + 1) * 1_000_000_000
            rows = np.concatenate([rgb.reshape(24, 96), np.full((24, 8), 7, np.uint8)], axis=1)
            header = store.types['std_msgs/msg/Header'](
                stamp=store.types['builtin_interfaces/msg/Time'](sec=i + 1, nanosec=0),
                frame_id='cam')
            msg = store.types[IMAGE](header=header, height=24, width=32, encoding='rgb8',
                                     is_bigendian=0, step=104, data=rows.reshape(-1))
            for conn in conns:
                writer.write(conn, stamp, store.serialize_cdr(msg, IMAGE))
    frames = dict(_BagFrames(bag, topics, 10_000_000).frames(0, [0, 1]))
    for i, rgb in enumerate(pictures):
        np.testing.assert_array_equal(frames[i], rgb)


def test_preprocess_refuses_cameras_of_different_length_and_leaves_nothing(
        tmp_path: Path) -> None:
    """The one rule of every command (episode, video-to-bag, data preprocess): refuse."""
    raw = raw_episode(tmp_path, [{'start_frame_id': 0, 'end_frame_id': 80}])
    short = raw / 'episode_001' / 'cam_left_wrist.mp4'
    short.unlink()
    with open_frames(demo_episode_dir() / 'cam_left_wrist.mp4') as video:
        frames = [video.read(i) for i in range(10)]
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*'mp4v'), 2.0,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    out = tmp_path / 'out'
    with pytest.raises(ConfigError, match=r'camera frame counts differ: .* has 86, .* has 10'):
        preprocess(discover(raw), PreprocessConfig(out, workers=1, progress=False))
    assert not (out / 'episode_001').exists()
