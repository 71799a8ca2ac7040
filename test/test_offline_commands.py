"""The offline commands refuse a bad input before they load the model (the loader is a spy that
must not be called), and an interrupted command exits 130 with one line, no traceback."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from videos import cut_video

from robo_dopamine_ros import cli
from robo_dopamine_ros.backends import arguments
from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.files.frames import demo_episode_dir

pytest.importorskip('rosbags')


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model load the command asks for (a scripted backend, so a good input runs)."""
    calls: list[str] = []

    def load(args: Any) -> tuple[ScriptedBackend, Any]:
        calls.append(args.backend)
        return ScriptedBackend(), GRM_3B

    monkeypatch.setattr(arguments, 'backend_from_args', load)
    return calls


@pytest.fixture(scope='module')
def demo_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo episode's front video as a raw single-view bag, without labels."""
    from robo_dopamine_ros.bags.video import videos_to_bag

    folder = tmp_path_factory.mktemp('demo-bag')
    front = folder / 'video' / 'cam_high.mp4'
    front.parent.mkdir()
    shutil.copyfile(demo_episode_dir() / 'cam_high.mp4', front)
    return videos_to_bag(folder / 'bag', front)


def episode(tmp_path: Path, *extra: str, front: Path | None = None) -> list[str]:
    return ['episode', '--front', str(front or demo_episode_dir() / 'cam_high.mp4'),
            '--frame-interval', '40', '--out-root', str(tmp_path / 'runs'), '--no-progress',
            *extra]


@pytest.mark.parametrize(('case', 'error'), [
    ('task', 'reserved'), ('left', 'does not exist'), ('goal', 'cannot read image'),
    ('cut', 'cannot decode frame')])
def test_episode_refuses_a_bad_input_before_loading_the_model(
        tmp_path: Path, loads: list[str], capsys: pytest.CaptureFixture[str], case: str,
        error: str) -> None:
    (tmp_path / 'empty.png').write_bytes(b'')
    command = {
        'task': episode(tmp_path, '--task', 'look at <image> now'),
        'left': episode(tmp_path, '--task', 'put it', '--left', str(tmp_path / 'none.mp4')),
        'goal': episode(tmp_path, '--task', 'put it', '--goal', str(tmp_path / 'empty.png')),
        'cut': episode(tmp_path, '--task', 'put it', front=cut_video(tmp_path)),
    }[case]
    assert cli.main(command) == 1
    assert error in capsys.readouterr().err
    assert loads == []
    assert not (tmp_path / 'runs').exists()


@pytest.mark.parametrize(('extra', 'error'), [
    (('--samples', '0'), '--samples must be >= 1'),
    (('--left', 'none.mp4'), 'does not exist'),
    (('--task', 'look at <image> now'), 'reserved')])
def test_prefill_check_refuses_a_bad_input_before_loading_the_model(
        tmp_path: Path, loads: list[str], capsys: pytest.CaptureFixture[str],
        extra: tuple[str, ...], error: str) -> None:
    args = ['--task', 'put it', *(str(tmp_path / a) if a.endswith('.mp4') else a for a in extra)]
    assert cli.main(['prefill-check', '--front', str(demo_episode_dir() / 'cam_high.mp4'),
                     '--frame-interval', '40', *args]) == 1
    assert error in capsys.readouterr().err
    assert loads == []


def test_episode_with_good_inputs_loads_the_model_once(
        tmp_path: Path, loads: list[str]) -> None:
    assert cli.main(episode(tmp_path, '--task', 'put it')) == 0
    assert loads == ['transformers']


def replay(demo_bag: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ['replay', str(demo_bag), '--left-topic', '', '--right-topic', '',
            '--out-dir', str(tmp_path / 'out'), '--no-progress', *extra]


@pytest.mark.parametrize(('case', 'error'), [
    ('topic', 'are not in bag'), ('transport', 'transport'), ('task', 'no task'),
    ('bad task', 'reserved'), ('goal', 'does not exist')])
def test_replay_refuses_a_bad_input_before_loading_the_model(
        demo_bag: Path, tmp_path: Path, loads: list[str], capsys: pytest.CaptureFixture[str],
        case: str, error: str) -> None:
    command = {
        'topic': replay(demo_bag, tmp_path, '--task', 'put it', '--front-topic', '/nope'),
        'transport': replay(demo_bag, tmp_path, '--task', 'put it', '--transport',
                            'compressed', '--front-topic', '/cam_high/image_raw'),
        'task': replay(demo_bag, tmp_path),
        'bad task': replay(demo_bag, tmp_path, '--task', 'say <image>'),
        'goal': replay(demo_bag, tmp_path, '--task', 'put it', '--goal',
                       str(tmp_path / 'none.png')),
    }[case]
    assert cli.main(command) == 1
    assert error in capsys.readouterr().err
    assert loads == []


def test_replay_with_good_inputs_loads_the_model_once(
        demo_bag: Path, tmp_path: Path, loads: list[str]) -> None:
    assert cli.main(replay(demo_bag, tmp_path, '--task', 'put it')) == 0
    assert loads == ['transformers']
    assert (tmp_path / 'out' / 'summary.json').is_file()


def test_sigint_exits_130_with_one_line(tmp_path: Path) -> None:
    """A real process scoring an episode and a real SIGINT, sent while a reading is asked."""
    code = f"""
import sys, time
from robo_dopamine_ros import cli
from robo_dopamine_ros.backends import arguments
from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.profiles import GRM_3B

class Slow(ScriptedBackend):
    def generate(self, queries):
        print('scoring', flush=True)
        time.sleep(60)
        return super().generate(queries)

arguments.backend_from_args = lambda args: (Slow(), GRM_3B)
sys.exit(cli.main({episode(tmp_path, '--task', 'put it')!r}))
"""
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == 'scoring\n'
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines() == ['interrupted']
