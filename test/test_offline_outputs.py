"""No half-written outputs: a bag, a frame folder, a JSON, PNG or MP4 appears whole or not at all
(files/outputs.py); streaming result files carry a completion marker. Each command is run on a
recording cut off mid-stream (it opens and declares 60 frames; about 30 decode)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from videos import cut_video

from robo_dopamine_ros import cli
from robo_dopamine_ros.backends import arguments
from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.engine import EpisodeEngine, Sample
from robo_dopamine_ros.core.errors import ImageError
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.files.frames import demo_episode_dir
from robo_dopamine_ros.offline.records import ResultWriter
from robo_dopamine_ros.training.preprocess import PreprocessConfig, preprocess
from robo_dopamine_ros.training.sources import discover

pytest.importorskip('rosbags')


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob('*') if '.partial-' in p.name)


def test_video_to_bag_of_a_cut_video_leaves_no_bag_and_a_rerun_works(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = cut_video(tmp_path)
    bag = tmp_path / 'bag'
    assert cli.main(['video-to-bag', str(bag), '--front', str(cut)]) == 1
    assert 'cannot decode frame' in capsys.readouterr().err
    assert not bag.exists() and leftovers(tmp_path) == []
    good = demo_episode_dir() / 'cam_high.mp4'
    assert cli.main(['video-to-bag', str(bag), '--front', str(good)]) == 0   # nothing in the way
    assert (bag / 'metadata.yaml').is_file()


@pytest.mark.parametrize(('name', 'content', 'error'), [
    ('task_instruction.json', b'', 'is not valid JSON'),
    ('task_instruction.json', b'[]', 'non-empty list of instruction strings'),
    ('annotated_keyframes.json', b'[{"start_frame_id": 0, "end_frame_id": 500}]',
     'is out of range'),
    ('goal.png', b'', 'cannot'),
])
def test_video_to_bag_refuses_a_label_replay_could_not_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes,
        error: str) -> None:
    episode = tmp_path / 'episode'
    episode.mkdir()
    front = episode / 'cam_high.mp4'
    shutil.copyfile(demo_episode_dir() / 'cam_high.mp4', front)
    (episode / name).write_bytes(content)
    bag = tmp_path / 'bag'
    assert cli.main(['video-to-bag', str(bag), '--front', str(front)]) == 1
    printed = capsys.readouterr().err
    assert name in printed and error in printed
    assert not bag.exists() and leftovers(tmp_path) == []


def test_episode_of_a_cut_video_writes_no_outputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(arguments, 'backend_from_args', lambda args: (ScriptedBackend(), GRM_3B))
    out = tmp_path / 'runs'
    assert cli.main(['episode', '--front', str(cut_video(tmp_path)), '--task', 'put it',
                     '--frame-interval', '5', '--out-root', str(out), '--no-progress']) == 1
    assert 'cannot decode frame' in capsys.readouterr().err
    assert not out.exists() or not [p for p in out.rglob('*') if p.is_file()]


def cut_episode(tmp_path: Path) -> Path:
    """A raw dataset of one episode whose three camera videos are cut off mid-stream."""
    episode = tmp_path / 'raw' / 'episode_001'
    episode.mkdir(parents=True)
    cut = cut_video(tmp_path)
    for cam in ('cam_high', 'cam_left_wrist', 'cam_right_wrist'):
        shutil.copyfile(cut, episode / f'{cam}.mp4')     # OpenCV reads it by content
    (episode / 'annotated_keyframes.json').write_text(json.dumps(
        [{'start_frame_id': 0, 'end_frame_id': 59}]))
    return tmp_path / 'raw'


def test_preprocess_of_a_cut_video_leaves_no_episode_folder(tmp_path: Path) -> None:
    out = tmp_path / 'train'
    with pytest.raises(ImageError, match='cannot decode frame'):
        preprocess(discover(cut_episode(tmp_path)), PreprocessConfig(out, 5, workers=1,
                                                                     progress=False))
    assert not (out / 'episode_001').exists() and leftovers(tmp_path) == []


def test_data_preprocess_of_a_cut_video_leaves_no_out_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = cut_episode(tmp_path)
    out = tmp_path / 'new' / 'train'
    command = ['data', 'preprocess', '--raw', str(raw), '--out', str(out), '--workers', '1',
               '-q']
    assert cli.main(command) == 1
    assert 'cannot decode frame' in capsys.readouterr().err
    assert not (tmp_path / 'new').exists()          # the folders the run created are gone
    out.mkdir(parents=True)
    assert cli.main(command) == 1
    assert out.is_dir() and list(out.iterdir()) == []   # a folder that was there stays


def test_result_files_are_marked_complete_only_when_the_run_finished(tmp_path: Path) -> None:
    engine = EpisodeEngine(ScriptedBackend(), profile=GRM_3B)
    engine.start('put it', demo_frame())
    with ResultWriter(tmp_path / 'ok') as sink:
        sink.write(engine.step(Sample(1, demo_frame(), demo_frame(), demo_frame())))
    assert json.loads((tmp_path / 'ok' / 'results.complete').read_text()) == {'rows': 1}
    with pytest.raises(RuntimeError), ResultWriter(tmp_path / 'killed') as sink:
        sink.write(engine.step(Sample(2, demo_frame(), demo_frame(), demo_frame())))
        raise RuntimeError('the run died')
    assert (tmp_path / 'killed' / 'results.jsonl').read_text().count('\n') == 1
    assert not (tmp_path / 'killed' / 'results.complete').exists()


def demo_frame():
    from robo_dopamine_ros.files.frames import open_frames

    with open_frames(demo_episode_dir() / 'cam_high.mp4') as video:
        return video.read(0)
