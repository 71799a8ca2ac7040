"""A checkpoint of either architecture runs through the commands with no flag beyond --model.

The tiny random-weight GRMs (synthetic vocabulary) of Qwen2.5-VL and Qwen3-VL go through
``robo-dopamine episode`` and ``robo-dopamine bench`` (the dispatcher batches the queries of
concurrent episodes): their config.json chooses the classes and the geometry. The answers are
noise, so the assertions are on what ran and what was written, not on scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip('torch')
pytest.importorskip('transformers')
pytest.importorskip('cv2')

from robo_dopamine_ros import cli
from robo_dopamine_ros.evaluation.data import FRONT_ONLY, write_bench_data
from robo_dopamine_ros.files.frames import demo_episode_dir


def test_episode_command_runs_either_architecture(tiny_arch_synthetic_dir: Path, tiny_arch: str,
                                                  tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    episode = demo_episode_dir()
    caplog.set_level('INFO')
    rc = cli.main(['episode', '--front', str(episode / 'cam_high.mp4'), '--task', 'organize',
                   '--frame-interval', '40', '--mode', 'incremental', '--out-root',
                   str(tmp_path), '--no-progress', '--model', str(tiny_arch_synthetic_dir),
                   '--device', 'cpu'])
    assert rc == 0
    [results] = tmp_path.rglob('results.jsonl')
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) >= 3
    assert f'({tiny_arch}) on cpu' in caplog.text


def test_bench_command_runs_either_architecture(tiny_arch_synthetic_dir: Path, tiny_arch: str,
                                                tmp_path: Path) -> None:
    data = write_bench_data(tmp_path / 'data', episodes=1, num_frames=12)
    out = tmp_path / 'out'
    rc = cli.main(['bench', '--input-json-dir', str(data.input_json_dir), '--base-dir',
                   str(data.base_dir), '--out-root-dir', str(out), '--datasets', FRONT_ONLY,
                   '--interval', '6', '--no-extra', '--no-progress', '--backend',
                   'transformers', '--model',
                   str(tiny_arch_synthetic_dir), '--device', 'cpu'])
    assert rc == 0
    summary = json.loads((out / 'summary_voc.json').read_text())
    assert FRONT_ONLY in summary['summary']


def test_commands_refuse_a_non_grm_architecture(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / 'llama'
    model.mkdir()
    (model / 'config.json').write_text(json.dumps({'model_type': 'llama'}))
    rc = cli.main(['episode', '--front', str(demo_episode_dir() / 'cam_high.mp4'), '--task',
                   'organize', '--out-root', str(tmp_path / 'o'), '--model', str(model),
                   '--device', 'cpu'])
    assert rc != 0
    assert ("model_type 'llama', which is not a supported GRM architecture; supported: "
            "['qwen2_5_vl', 'qwen3_vl']") in capsys.readouterr().err
