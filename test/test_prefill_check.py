"""``robo-dopamine prefill-check`` on the committed demo GRM (CPU, a few frames of a held-out
synthetic episode): prefill with the common head agrees with the whole answers and is
recommended; the negative control (a deliberately wrong head) fails it, differences listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from robo_dopamine_ros.cli import main

pytest.importorskip('torch')
pytest.importorskip('transformers')
pytest.importorskip('cv2')

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / 'robo_dopamine_ros' / 'models' / 'demo_grm'


@pytest.fixture(scope='module')
def episode(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A held-out episode (seed 3; the demo GRM was trained on seeds >= 10 000) as videos."""
    from robo_dopamine_ros.synthetic.episode import render_episode
    from robo_dopamine_ros.synthetic.spec import EpisodeSpec
    from robo_dopamine_ros.synthetic.writer import write_episode_files

    rendered = render_episode(EpisodeSpec(seed=3, num_frames=40, fps=15.0, size=(320, 240),
                                          outcome='success'))
    folder = tmp_path_factory.mktemp('held-out') / 'episode'
    return write_episode_files(rendered, folder, 'videos'), rendered.task


def _check(episode: tuple[Path, str], *extra: str) -> list[str]:
    folder, task = episode
    return ['prefill-check', '--front', str(folder / 'cam_high.mp4'),
            '--left', str(folder / 'cam_left_wrist.mp4'),
            '--right', str(folder / 'cam_right_wrist.mp4'), '--task', task,
            '--frame-interval', '10', '--samples', '3', '--model', str(MODEL),
            '--device', 'cpu', *extra]


def test_prefill_check_recommends_the_common_head_on_the_demo_grm(
        episode: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_check(episode)) == 0
    out = capsys.readouterr().out
    assert '100.0 %' in out and 'recommended: model.answer_prefill: on' in out
    assert 'differs' not in out


def test_prefill_check_negative_control_fails(episode: tuple[Path, str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_check(episode, '--negative-control')) == 1
    out = capsys.readouterr().out
    assert 'not recommended' in out and "head '<score>" in out
    assert 'differs: answer' in out
