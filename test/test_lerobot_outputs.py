"""What relabel-lerobot hands a LeRobot user, checked against LeRobot's documented layout.

LeRobot's layout, as its code writes it (read, not imported: lerobot cannot be installed next to
this venv; scripts/check_lerobot_interop.py loads our output with lerobot itself):

* ``next.reward`` float32, ``next.done`` / ``next.success`` bool, shape ``[1]``, declared as
  ``lerobot_eval`` declares them and stored as scalar columns;
* ``meta/stats.json``: per feature min, max, mean, std, count, q01 q10 q50 q90 q99
  (``compute_stats.py``); each ``meta/episodes`` row the episode's as ``stats/<feature>/<stat>``;
* the progress file of its reward models (SARM/Robometer ``compute_rabc_weights``): columns
  index, episode_index, frame_index, progress_sparse, the model in the schema metadata under
  ``reward_model_path``; RA-BC looks progress up by ``index``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip('pyarrow')
pytest.importorskip('av')

import pyarrow.parquet as pq  # noqa: E402
from test_lerobot_relabel import ConstantTestDouble, _options  # noqa: E402

from robo_dopamine_ros.core.errors import ConfigError  # noqa: E402
from robo_dopamine_ros.core.profiles import DEMO_GRM  # noqa: E402
from robo_dopamine_ros.lerobot.layout import LeRobotV3  # noqa: E402
from robo_dopamine_ros.lerobot.relabel import Relabeller  # noqa: E402
from robo_dopamine_ros.lerobot.stats import STAT_NAMES  # noqa: E402
from robo_dopamine_ros.lerobot.synthetic_dataset import write_lerobot_dataset  # noqa: E402
from robo_dopamine_ros.synthetic.episode import render_episode  # noqa: E402
from robo_dopamine_ros.synthetic.spec import EpisodeSpec  # noqa: E402

NEXT = {'next.reward': 'float32', 'next.done': 'bool', 'next.success': 'bool'}
ARROW = {'float32': pa.float32(), 'bool': pa.bool_(), 'int64': pa.int64()}
SIDECAR_COLUMNS = ['index', 'episode_index', 'frame_index', 'progress_sparse']


def two_episodes(root: Path, frames: int) -> Path:
    """A success and a fail episode, one camera, one data/video file each."""
    episodes = [render_episode(EpisodeSpec(seed=500, num_frames=frames, outcome=o))
                for o in ('success', 'fail')]
    return write_lerobot_dataset(episodes, root, cameras=('front',), episodes_per_file=1)


@pytest.fixture(scope='module')
def small(tmp_path_factory) -> Path:
    return two_episodes(tmp_path_factory.mktemp('small') / 'ds', 30)


@pytest.fixture(scope='module')
def relabelled(small, tmp_path_factory) -> Path:
    """A run whose constant +100% answers reach success (Φ >= 0.95) at the first sample after
    START (frame 5 of 30); later samples are still scored."""
    out = tmp_path_factory.mktemp('run') / 'rewards.parquet'
    summary = Relabeller(small, ConstantTestDouble('<score>+100%</score>'), DEMO_GRM,
                         _options(goal_per_episode=True,
                                  write_dataset=out.parent / 'copy')).run(out)
    assert summary.sidecar == out.parent / 'rewards.progress.parquet'
    return out


def _data(root: Path):
    return pa.concat_tables(pq.read_table(p) for p in sorted((root / 'data').glob('*/*.parquet')))


def _episodes(root: Path):
    return pa.concat_tables(pq.read_table(p)
                            for p in sorted((root / 'meta' / 'episodes').glob('*/*.parquet')))


def check_lerobot_layout(root: Path) -> None:
    """Every feature declared, stored, and with dataset and per-episode statistics."""
    info = json.loads((root / 'meta' / 'info.json').read_text())
    stats = json.loads((root / 'meta' / 'stats.json').read_text())
    data, episodes = _data(root), _episodes(root)
    assert data.num_rows == info['total_frames'] == sum(episodes.column('length').to_pylist())
    for key, feature in info['features'].items():
        assert {'dtype', 'shape', 'names'} <= set(feature), key
        assert sorted(stats[key]) == sorted(STAT_NAMES), key
        assert stats[key]['count'] == [info['total_frames']], key
        per = [f'stats/{key}/{name}' for name in STAT_NAMES]
        assert set(per) <= set(episodes.column_names), key
        assert [c[0] for c in episodes.column(f'stats/{key}/count').to_pylist()] == \
            episodes.column('length').to_pylist()
        if feature['dtype'] == 'video':
            assert np.shape(stats[key]['mean']) == (3, 1, 1), key
            continue
        assert len(stats[key]['mean']) == feature['shape'][0], key
        if feature['shape'] == [1] and feature['dtype'] in ARROW:
            assert data.schema.field(key).type == ARROW[feature['dtype']], key


def test_synth_lerobot_writes_the_layout_lerobot_writes(small):
    check_lerobot_layout(small)


def test_the_copy_has_lerobot_next_fields_with_stats(relabelled, small):
    copy = relabelled.parent / 'copy'
    check_lerobot_layout(copy)
    info = json.loads((copy / 'meta' / 'info.json').read_text())
    for key, dtype in NEXT.items():
        assert info['features'][key] == {'dtype': dtype, 'shape': [1], 'names': None}
    assert info['features']['robo_dopamine.reward_valid']['dtype'] == 'bool'
    assert info['features']['robo_dopamine.progress']['dtype'] == 'float32'
    source = json.loads((small / 'meta' / 'info.json').read_text())
    assert {k: v for k, v in info.items() if k != 'features'} == \
        {k: v for k, v in source.items() if k != 'features'}
    data = _data(copy)
    assert data.column('next.reward').to_pylist() == pytest.approx(
        pq.read_table(relabelled).column('next_reward').to_pylist(), abs=1e-6)
    stats = json.loads((copy / 'meta' / 'stats.json').read_text())
    assert stats['next.done']['max'] == [1.0] and stats['next.done']['count'] == [60]


def test_next_fields_follow_the_terminal_rule(relabelled):
    rows = pq.read_table(relabelled).to_pylist()
    success = [r for r in rows if r['episode_index'] == 0]
    reached = next(r['frame_index'] for r in success if r['scored'] and r['progress'] >= 0.95)
    assert reached == 5
    done = [r['frame_index'] for r in success if r['next_done']]
    assert done == [reached - 1, 29]                   # terminated at success; recording ends
    assert [r['next_success'] for r in success] == [False] * (reached - 1) + [True] * 26
    rewards = [r['next_reward'] for r in success]
    assert rewards[reached - 1] == pytest.approx(1.0 - success[reached - 1]['progress'])
    assert rewards[reached:] == [0.0] * 25             # no r_gold after the first success
    assert sum(rewards) == pytest.approx(1.0, abs=0.05)
    assert sum(r['reward'] for r in success) == pytest.approx(1.0, abs=0.05)
    # Progress is interpolated between samples: it rises every frame, no flat run then a jump.
    progress = [r['progress'] for r in success]
    assert (np.diff(progress[:reached + 1]) > 0).all()
    assert all(r['next_valid'] for r in rows)


def test_the_sidecar_is_lerobots_progress_file_for_every_frame(relabelled, small):
    table = pq.read_table(relabelled.parent / 'rewards.progress.parquet')
    assert table.column_names == SIDECAR_COLUMNS
    assert [f.type for f in table.schema] == [pa.int64()] * 3 + [pa.float32()]
    assert table.schema.metadata[b'reward_model_path'] == b'constant-test-double'
    assert table.column('index').to_pylist() == list(range(60))
    frames = _data(small)
    assert table.column('frame_index').to_pylist() == frames.column('frame_index').to_pylist()
    progress = np.asarray(table.column('progress_sparse'))
    rows = pq.read_table(relabelled)
    assert np.isfinite(progress).all()
    assert progress == pytest.approx(np.asarray(rows.column('progress')), abs=1e-6)


def test_held_samples_are_marked_invalid_and_the_sidecar_goes_where_asked(small, tmp_path):
    out, sidecar = tmp_path / 'r.parquet', tmp_path / 'elsewhere' / 'progress.parquet'
    Relabeller(small, ConstantTestDouble('no score here'), DEMO_GRM,
               _options(goal_per_episode=True, sidecar=sidecar,
                        write_dataset=tmp_path / 'copy')).run(out)
    assert sidecar.is_file() and not (tmp_path / 'r.progress.parquet').exists()
    valid = _data(tmp_path / 'copy').column('robo_dopamine.reward_valid').to_pylist()
    assert valid == ([False] * 29 + [True]) * 2        # every sample held; the last row has none
    assert set(_data(tmp_path / 'copy').column('next.reward').to_pylist()) == {0.0}
    with pytest.raises(ConfigError, match='sidecar would overwrite the output'):
        Relabeller(small, ConstantTestDouble(), DEMO_GRM,
                   _options(goal_per_episode=True, sidecar=tmp_path / 'x.parquet')).run(
            tmp_path / 'x.parquet')
    assert not (tmp_path / 'x.parquet').exists()


def test_the_copy_reads_back_with_our_reader(relabelled):
    copy = LeRobotV3(relabelled.parent / 'copy')
    assert copy.frames(copy.episode(1)).index == list(range(30, 60))
