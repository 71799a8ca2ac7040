"""Bag replay (offline/replay.py) and the episode's other forms, with the scripted test double.

The test double answers with a digest of the pixels, so two inputs give identical results only if
every image reaching the model is identical: the same episode as an mcap bag, a sqlite3 bag and
PNG frame folders must score the same, and a video the same as a bag of its decoded frames
(mp4 is lossy). Stamps differ between the forms (bags keep the camera clock, videos start at 0),
so results are compared relative to the first sample.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robo_dopamine_ros import cli
from robo_dopamine_ros.backends import arguments
from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.bags.bag_copy import BagCopy
from robo_dopamine_ros.bags.msgtypes import build_message
from robo_dopamine_ros.bags.reader import BagReader
from robo_dopamine_ros.bags.video import videos_to_bag
from robo_dopamine_ros.bags.writer import write_episode_bag, write_image_bag
from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.names import CAMERA_FILES
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.core.types import ALL_MODES
from robo_dopamine_ros.files.frames import demo_episode_dir, open_frames
from robo_dopamine_ros.offline.episode import EpisodeInputs, EpisodeOptions, run_episode
from robo_dopamine_ros.offline.records import read_records
from robo_dopamine_ros.offline.replay import ReplayOptions, replay_bag
from robo_dopamine_ros.pipeline.fields import episode_event_fields
from robo_dopamine_ros.pipeline.params import NodeConfig
from robo_dopamine_ros.pipeline.params_file import load_params_file
from robo_dopamine_ros.pipeline.worker import EventKind, WorkerEvent
from robo_dopamine_ros.synthetic.episode import render_episode
from robo_dopamine_ros.synthetic.spec import EpisodeSpec, SyntheticEpisode
from robo_dopamine_ros.synthetic.writer import write_episode_files
from robo_dopamine_ros.training.keyframes import Segment, stepwise_progress

#: 21 frames at 10 fps; every 5th frame is a sample: header time 0.5 s = frame interval 5, and
#: the last frame (20) is on the grid, so both samplers pick frames 0, 5, 10, 15, 20.
FPS, FRAMES, EVERY = 10.0, 21, 5
NODE = NodeConfig.from_values({'sampling.interval_s': EVERY / FPS})
COMPARED = ('step', 'progress', 'progress_raw', 'valid', 'status', 'reward', 'done',
            *(f'{m.value}_{k}' for m in ALL_MODES for k in ('answer', 'hop', 'progress')))


@pytest.fixture(scope='module')
def episode() -> SyntheticEpisode:
    return render_episode(EpisodeSpec(seed=3, num_frames=FRAMES, fps=FPS, size=(96, 72)))


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What must agree between two forms of one episode: everything but absolute stamps."""
    t0 = records[0]['stamp_after_ns']
    return [{**{k: r[k] for k in COMPARED}, 't': r['stamp_after_ns'] - t0} for r in records]


def replayed(bag: Path, out: Path, node: NodeConfig = NODE, **kw: Any) -> list[dict[str, Any]]:
    replay_bag(bag, ScriptedBackend(), node, ReplayOptions(out, **kw), GRM_3B)
    return read_records(out / 'results.jsonl')


def scored_files(folder: Path, ext: str, out: Path, goal: Path) -> list[dict[str, Any]]:
    cams = {cam: folder / f'{name}{ext}' for cam, name in CAMERA_FILES.items()}
    inputs = EpisodeInputs(cams['front'], 'put it there', cams['left'], cams['right'], goal, FPS)
    run_dir = run_episode(ScriptedBackend(), GRM_3B, inputs,
                          EpisodeOptions(out_root=out, frame_interval=EVERY))
    return read_records(run_dir / 'results.jsonl')


def test_replay_same_episode_from_mcap_sqlite3_and_frame_folders_is_identical(
        episode: SyntheticEpisode, tmp_path: Path) -> None:
    mcap = write_episode_bag(episode, tmp_path / 'mcap', storage='mcap')
    db3 = write_episode_bag(episode, tmp_path / 'db3', storage='sqlite3')
    folders = write_episode_files(episode, tmp_path / 'frames', 'frames')
    from_mcap = replayed(mcap, tmp_path / 'r-mcap', task='put it there')
    from_db3 = replayed(db3, tmp_path / 'r-db3', task='put it there')
    from_png = scored_files(folders, '', tmp_path / 'r-png', folders / 'goal.png')
    assert [r['frame_index'] for r in from_mcap] == [0, 5, 10, 15, 20]
    assert comparable(from_mcap) == comparable(from_db3) == comparable(from_png)
    assert [r['t'] for r in comparable(from_mcap)] == [k * 500_000_000 for k in range(5)]
    assert len({r['incremental_answer'] for r in from_mcap[1:]}) > 1     # pixels mattered


def test_replay_video_equals_a_bag_of_its_decoded_frames(episode: SyntheticEpisode,
                                                         tmp_path: Path) -> None:
    videos = write_episode_files(episode, tmp_path / 'videos', 'videos')
    with open_frames(videos / 'cam_high.mp4') as front:
        assert len(front) == FRAMES and front.fps == pytest.approx(FPS)
    bag = videos_to_bag(tmp_path / 'bag', videos / 'cam_high.mp4', videos / 'cam_left_wrist.mp4',
                        videos / 'cam_right_wrist.mp4', storage='sqlite3')
    assert sorted(p.name for p in bag.iterdir() if p.suffix != '.db3') == [
        'annotated_keyframes.json', 'goal.png', 'metadata.yaml', 'task_instruction.json']
    from_bag = replayed(bag, tmp_path / 'r-bag')
    from_mp4 = scored_files(videos, '.mp4', tmp_path / 'r-mp4', videos / 'goal.png')
    assert comparable(from_bag) == comparable(from_mp4)
    assert from_bag[0]['task'] == episode.task                  # from task_instruction.json


def test_replay_of_the_real_slice_converted_to_a_bag_equals_the_episode_pipeline(
        tmp_path: Path) -> None:
    demo = demo_episode_dir()
    bag = videos_to_bag(tmp_path / 'slice', demo / 'cam_high.mp4', demo / 'cam_left_wrist.mp4',
                        demo / 'cam_right_wrist.mp4')
    # 86 frames at 2 fps: every 5th frame (2.5 s) ends on the last frame, 85.
    node = NodeConfig.from_values({'sampling.interval_s': 2.5})
    from_bag = replayed(bag, tmp_path / 'r-bag', node)
    inputs = EpisodeInputs(demo / 'cam_high.mp4', 'organize the table',
                           demo / 'cam_left_wrist.mp4', demo / 'cam_right_wrist.mp4',
                           demo / 'goal.png')
    run_dir = run_episode(ScriptedBackend(), GRM_3B, inputs,
                          EpisodeOptions(out_root=tmp_path / 'ep', frame_interval=5))
    assert comparable(from_bag) == comparable(read_records(run_dir / 'results.jsonl'))
    assert from_bag[-1]['frame_index'] == 85 and from_bag[0]['task'] == 'clean the table'
    summary = json.loads((tmp_path / 'r-bag' / 'summary.json').read_text())
    assert summary['ground_truth'].endswith('annotated_keyframes.json')
    assert summary['episodes'][0]['gt_voc'] == pytest.approx(1.0)    # step-wise truth rises


def test_replay_splits_at_gaps_and_recorded_episode_events(episode: SyntheticEpisode,
                                                           tmp_path: Path) -> None:
    gap = 10_000_000_000
    stamps = [*episode.stamps_ns, *(s + gap + episode.stamps_ns[-1] - episode.stamps_ns[0]
                                    for s in episode.stamps_ns)]
    frames = ((s, {c: episode.frames[c][i % FRAMES] for c in episode.frames})
              for i, s in enumerate(stamps))
    bag = write_image_bag(tmp_path / 'two', tuple(episode.frames), frames)
    by_gap = replayed(bag, tmp_path / 'gap', task='first', split_gap_s=1.0)
    assert [(r['episode_id'], r['step']) for r in by_gap] == [
        (f'episode-000{e}', k) for e in (1, 2) for k in range(5)]
    assert comparable(by_gap[:5]) == comparable(by_gap[5:])       # same frames, fresh episode
    assert (tmp_path / 'gap' / 'progress_episode-0002.png').is_file()

    events = tmp_path / 'events'         # the node's START events, as a recording holds them
    with BagReader(bag) as src, BagCopy(events, src) as out:
        out.add_topic('/robo_dopamine/episode', 'robo_dopamine_ros/msg/EpisodeEvent')
        for msg in src.raw():
            out.copy(msg)
        for stamp, task in ((stamps[0] - 1, 'first task'), (stamps[FRAMES], 'second task')):
            out.write('/robo_dopamine/episode', stamp, build_message(
                'robo_dopamine_ros/msg/EpisodeEvent', episode_event_fields(
                    WorkerEvent(EventKind.START, task=task), stamp)))
    by_event = replayed(events, tmp_path / 'ev', split_at_events=True)
    assert [(r['episode_id'], r['task']) for r in by_event[::5]] == [
        ('episode-0001', 'first task'), ('episode-0002', 'second task')]


def test_replay_writes_a_copy_of_the_bag_with_its_rewards(episode: SyntheticEpisode,
                                                          tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'in', storage='sqlite3')
    records = replayed(bag, tmp_path / 'r', write_bag=tmp_path / 'out')
    with BagReader(tmp_path / 'out') as out:
        assert out.message_counts == {
            '/cam_high/image_raw': FRAMES, '/cam_left_wrist/image_raw': FRAMES,
            '/cam_right_wrist/image_raw': FRAMES, '/robo_dopamine/progress': 5,
            '/robo_dopamine/reward': 4, '/robo_dopamine/episode': 1}
        assert [c.ext.offered_qos_profiles[0].durability.name for c in out.connections
                if c.topic == '/robo_dopamine/episode'] == ['TRANSIENT_LOCAL']
        progress = [m for m in out.messages() if m.topic == '/robo_dopamine/progress']
    assert [float(p.msg.progress) for p in progress] == pytest.approx(
        [r['progress'] for r in records])
    assert [p.stamp_ns for p in progress] == [r['bag_time_ns'] for r in records]
    # A second replay of the copy scores the same and refuses to overwrite the added topics.
    assert comparable(replayed(tmp_path / 'out', tmp_path / 'r2')) == comparable(records)
    with pytest.raises(ConfigError, match='another topic prefix'):
        replayed(tmp_path / 'out', tmp_path / 'r3', write_bag=tmp_path / 'out2')


def test_replay_reports_ground_truth_error_and_voc(episode: SyntheticEpisode,
                                                   tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'in')
    records = replayed(bag, tmp_path / 'r')
    truth = np.interp([r['stamp_after_ns'] for r in records], episode.stamps_ns,
                      episode.progress)
    assert [r['gt_progress'] for r in records] == pytest.approx(truth.tolist())
    ep = json.loads((tmp_path / 'r' / 'summary.json').read_text())['episodes'][0]
    err = np.array([r['progress'] for r in records[1:]]) - truth[1:]
    assert ep['gt_mae'] == pytest.approx(np.abs(err).mean())
    assert ep['gt_voc'] == 1.0 and -1.0 <= ep['voc'] <= 1.0
    assert set(ep['voc_modes']) == {'incremental', 'forward', 'backward'}


def test_stepwise_progress_gives_each_subtask_an_equal_share() -> None:
    segments = [Segment(10, 20), Segment(20, 60), Segment(70, 80)]      # gap 60..70
    assert stepwise_progress(segments, [0, 10, 15, 20, 40, 65, 75, 90]).tolist() == \
        pytest.approx([0, 0, 1 / 6, 1 / 3, 0.5, 2 / 3, 5 / 6, 1])


def test_replay_absent_topic_error_lists_the_bag_topics(episode: SyntheticEpisode,
                                                        tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'in', include_wrists=False)
    with pytest.raises(ConfigError, match=r"\['/cam_left_wrist/image_raw', "
                                          r"'/cam_right_wrist/image_raw'\] are not in bag .*"
                                          r"it has \['/cam_high/image_raw'\]"):
        replayed(bag, tmp_path / 'r')
    single = NodeConfig.from_values({'cameras.left.topic': '', 'cameras.right.topic': '',
                                     'cameras.front.transport': 'compressed'})
    with pytest.raises(ConfigError, match="'/cam_high/image_raw' is 'sensor_msgs/msg/Image'"):
        replayed(bag, tmp_path / 'r', single)


def test_replay_of_a_corrupt_message_drops_that_frame_as_the_node_does(
        episode: SyntheticEpisode, tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'in', storage='sqlite3')
    clean = replayed(bag, tmp_path / 'clean')
    with sqlite3.connect(bag / 'in.db3') as db:       # frame 16 of the front camera
        db.execute("UPDATE messages SET data = x'00010000' WHERE id = 49")
    steps = [r['step'] for r in replayed(bag, tmp_path / 'r')]
    doc = json.loads((tmp_path / 'r' / 'summary.json').read_text())
    assert doc['error'] is None and doc['counters']['bad_frames'] == 1
    assert steps == list(range(len(steps))) and len(clean) - 1 <= len(steps) < len(clean) + 1


def test_replay_of_a_truncated_bag_is_a_clear_error(episode: SyntheticEpisode,
                                                    tmp_path: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'in')
    data = (bag / 'in.mcap').read_bytes()
    (bag / 'in.mcap').write_bytes(data[:len(data) // 2])
    with pytest.raises(ConfigError, match=r'truncated or corrupt.*mcap recover'):
        replayed(bag, tmp_path / 'r')


def test_videos_of_different_lengths_are_refused(episode: SyntheticEpisode,
                                                 tmp_path: Path) -> None:
    videos = write_episode_files(episode, tmp_path / 'videos', 'videos')
    short = render_episode(EpisodeSpec(seed=3, num_frames=FRAMES - 1, fps=FPS, size=(96, 72)))
    write_episode_files(short, tmp_path / 'short', 'videos')
    with pytest.raises(ConfigError, match=r'camera frame counts differ: .* has 21, .* has 20'):
        videos_to_bag(tmp_path / 'bag', videos / 'cam_high.mp4',
                      tmp_path / 'short' / 'cam_left_wrist.mp4')
    assert not (tmp_path / 'bag').exists()


KILLED_RUN = '''
import sys, time
from pathlib import Path
from robo_dopamine_ros.backends.scripted import ScriptedBackend, digest_script
from robo_dopamine_ros.offline.replay import ReplayOptions, replay_bag
from robo_dopamine_ros.pipeline.params import NodeConfig

def slow(query):
    time.sleep(0.3)
    return digest_script(query)

replay_bag(sys.argv[1], ScriptedBackend(slow), NodeConfig.from_values({}),
           ReplayOptions(Path(sys.argv[2])))
'''


def test_a_killed_replay_leaves_valid_jsonl_and_csv(tmp_path: Path) -> None:
    long = render_episode(EpisodeSpec(seed=4, num_frames=40, fps=2.0, size=(64, 48)))
    bag = write_episode_bag(long, tmp_path / 'in')
    script = tmp_path / 'run.py'
    script.write_text(KILLED_RUN)
    out = tmp_path / 'r'
    proc = subprocess.Popen([sys.executable, str(script), str(bag), str(out)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len(read_records(out / 'results.jsonl') if out.exists() else []) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, 'replay did not start'
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    rows = read_records(out / 'results.jsonl')
    with (out / 'results.csv').open(newline='') as f:
        table = list(csv.reader(f))
    assert 3 <= len(rows) < 20 and len(table) - 1 in (len(rows), len(rows) - 1)
    assert all(len(row) == len(table[0]) for row in table)
    assert [int(row[1]) for row in table[1:]] == list(range(len(table) - 1))


NO_ROS = '''
import sys
for name in ('rclpy', 'rcl_interfaces', 'sensor_msgs', 'std_msgs', 'builtin_interfaces'):
    sys.modules[name] = None          # import fails as on a machine without ROS
from pathlib import Path
from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.offline.replay import ReplayOptions, replay_bag
from robo_dopamine_ros.pipeline.params import NodeConfig
from robo_dopamine_ros.pipeline.params_file import load_params_file

node = NodeConfig.from_values({**load_params_file(sys.argv[3]), 'sampling.interval_s': 0.5})
summary = replay_bag(sys.argv[1], ScriptedBackend(), node, ReplayOptions(Path(sys.argv[2]),
                     write_bag=Path(sys.argv[2]) / 'bag'))
print(summary.episodes[0]['samples'])
'''


def test_replay_runs_without_ros(episode: SyntheticEpisode, tmp_path: Path,
                                 repo_root: Path) -> None:
    bag = write_episode_bag(episode, tmp_path / 'in')
    script = tmp_path / 'run.py'
    script.write_text(NO_ROS)
    done = subprocess.run([sys.executable, str(script), str(bag), str(tmp_path / 'r'),
                           str(repo_root / 'config' / 'default.yaml')],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '5'


def test_load_params_file_reads_the_node_yaml(repo_root: Path, tmp_path: Path) -> None:
    values = load_params_file(repo_root / 'config' / 'single_camera.yaml')
    assert values['cameras.left.topic'] == '' and NodeConfig.from_values(values).cameras[0].role \
        == 'front'
    (tmp_path / 'bad.yaml').write_text('cameras: {front: {topic: /x}}\n')
    with pytest.raises(ConfigError, match='ros__parameters'):
        load_params_file(tmp_path / 'bad.yaml')


MULTI_NODE = """
/**:
  ros__parameters:
    use_sim_time: true
    sampling: {interval_s: 2.0}
camera_driver:
  ros__parameters:
    sampling: {interval_s: 5.0}
/robot1:
  robo_dopamine:
    ros__parameters:
      sampling: {interval_s: 0.5}
/robot2/robo_dopamine:
  ros__parameters:
    sampling: {interval_s: 0.25}
/**/robo_*:
  ros__parameters:
    task: not a wildcard in a name
"""


def test_load_params_file_takes_only_this_nodes_sections(tmp_path: Path) -> None:
    path = tmp_path / 'robot.yaml'
    path.write_text(MULTI_NODE)
    assert load_params_file(path) == {'sampling.interval_s': 2.0}
    assert load_params_file(path, '/robot1/robo_dopamine') == {'sampling.interval_s': 0.5}
    assert load_params_file(path, '/robot2/robo_dopamine')['sampling.interval_s'] == 0.25
    assert load_params_file(path, '/camera_driver') == {'sampling.interval_s': 5.0}
    path.write_text('/other: {ros__parameters: {task: x}}\n')
    with pytest.raises(ConfigError, match="no section for node '/robo_dopamine'"):
        load_params_file(path)


def scripted(args: Any) -> tuple[ScriptedBackend, Any]:
    return ScriptedBackend(), GRM_3B


def test_cli_episode_replay_and_video_to_bag(episode: SyntheticEpisode, tmp_path: Path,
                                             repo_root: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(arguments, 'backend_from_args', scripted)   # no model in this test
    videos = write_episode_files(episode, tmp_path / 'videos', 'videos')
    assert cli.main(['video-to-bag', str(tmp_path / 'bag'), '--front',
                     str(videos / 'cam_high.mp4'), '--left', str(videos / 'cam_left_wrist.mp4'),
                     '--right', str(videos / 'cam_right_wrist.mp4'), '--compressed']) == 0
    assert cli.main(['replay', str(tmp_path / 'bag'), '--params-file',
                     str(repo_root / 'config' / 'default.yaml'), '--transport', 'compressed',
                     '-p', 'sampling.interval_s=0.5', '--out-dir', str(tmp_path / 'r'),
                     '--no-progress']) == 0
    assert 'episode-0001' in capsys.readouterr().out
    assert len(read_records(tmp_path / 'r' / 'results.jsonl')) == 5
    assert cli.main(['episode', '--front', str(videos / 'cam_high.mp4'), '--task', 'put it',
                     '--frame-interval', '5', '--mode', 'all', '--out-root',
                     str(tmp_path / 'ep'), '--no-progress']) == 0
    run_dir = next((tmp_path / 'ep').iterdir())
    assert {'pred_fused.json', 'pred_backward.json', 'results.csv', 'progress.png'} <= {
        p.name for p in run_dir.iterdir()}
    assert cli.main(['replay', str(tmp_path / 'bag'), '--out-dir', str(tmp_path / 'x')]) == 1
    assert 'are not in bag' in capsys.readouterr().err
