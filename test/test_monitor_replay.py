"""The task monitor through bag replay: synthetic success / stall / regress / fail episodes scored
by the committed demo GRM end with the status their outcome calls for (fail: REGRESSING or
STALLED), with the monitor set from node parameters, also through the command line.

Negative control: a test double that answers the same hop whatever the images gives the four
outcomes one and the same status sequence, so the expectations cannot all hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from robo_dopamine_ros import cli
from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.bags.writer import write_episode_bag
from robo_dopamine_ros.core.profiles import DEMO_GRM
from robo_dopamine_ros.offline.records import read_records
from robo_dopamine_ros.offline.replay import ReplayOptions, replay_bag
from robo_dopamine_ros.pipeline.params import NodeConfig
from robo_dopamine_ros.synthetic.episode import render_episode
from robo_dopamine_ros.synthetic.spec import EpisodeSpec

pytest.importorskip('cv2')

OUTCOMES = ('success', 'stall', 'regress', 'fail')
EXPECTED = {'success': {'succeeded'}, 'stall': {'stalled'}, 'regress': {'regressing'},
            'fail': {'regressing', 'stalled'}}
#: 4 s episodes sampled every 0.25 s: 16 samples, so the stall window is 4 samples (1 s).
PARAMS = {'sampling.interval_s': 0.25, 'monitor.stall_window': 4}
MODEL = Path(__file__).resolve().parents[1] / 'robo_dopamine_ros' / 'models' / 'demo_grm'


@pytest.fixture(scope='module')
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('monitor-bags')
    return {o: write_episode_bag(render_episode(EpisodeSpec(seed=601, outcome=o, num_frames=60,
                                                            size=(160, 120))), root / o)
            for o in OUTCOMES}


def statuses(bag: Path, backend, out: Path) -> list[str]:
    replay_bag(bag, backend, NodeConfig.from_values(PARAMS), ReplayOptions(out_dir=out), DEMO_GRM)
    return [r['task_status'] for r in read_records(out / 'results.jsonl')]


@pytest.fixture(scope='module')
def demo_statuses(bags, demo_grm_backend, tmp_path_factory) -> dict[str, list[str]]:
    out = tmp_path_factory.mktemp('monitor-replay')
    return {o: statuses(bags[o], demo_grm_backend, out / o) for o in OUTCOMES}


def test_replay_final_task_status_matches_each_outcome(demo_statuses) -> None:
    seen = demo_statuses
    assert {o: s[-1] for o, s in seen.items() if s[-1] not in EXPECTED[o]} == {}, seen
    assert 'succeeded' not in seen['stall'] + seen['regress'] + seen['fail']
    assert 'stalled' not in seen['success'][-4:]


def test_a_model_blind_to_the_images_gives_every_outcome_the_same_statuses(
        bags, tmp_path: Path) -> None:
    blind = ScriptedBackend(lambda _: '<score>+5%</score>')
    seen = {o: statuses(bags[o], blind, tmp_path / o) for o in OUTCOMES}
    assert len({tuple(s) for s in seen.values()}) == 1
    assert sum(seen[o][-1] in EXPECTED[o] for o in OUTCOMES) < len(OUTCOMES)


@pytest.mark.skipif(not (MODEL / 'model.safetensors').is_file(), reason='demo GRM not committed')
def test_replay_command_takes_the_monitor_parameters(bags, demo_statuses,
                                                     tmp_path: Path, capsys) -> None:
    pytest.importorskip('torch')
    base = ['replay', str(bags['stall']), '--backend', 'transformers', '--model', str(MODEL),
            '--device', 'cpu', '--interval', '0.25', '--no-progress']
    assert cli.main([*base, '-p', 'monitor.stall_window=4', '--out-dir',
                     str(tmp_path / 'cli')]) == 0
    via_cli = [r['task_status'] for r in read_records(tmp_path / 'cli' / 'results.jsonl')]
    assert via_cli == demo_statuses['stall']
    assert via_cli[-1] == 'stalled'
    assert cli.main([*base, '-p', 'monitor.stall_window=1']) != 0
    assert "monitor.stall_window' must be >= 2" in capsys.readouterr().err
