"""relabel-lerobot: LeRobot v3 datasets read and written with pyarrow and PyAV, scored per frame.

The datasets are written by the synthetic generator (lerobot.synthetic_dataset) in the v3
layout taken from lerobot's code: several episodes per data/video/metadata file, each located by
its index range and video from/to timestamps. Quality is checked with the committed demo GRM
(success ends higher than fail/stall/regress, by a margin) against a constant-answer test double
that cannot separate them; resume, atomicity, goal options and bad input use test doubles.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip('pyarrow')
av = pytest.importorskip('av')
pytest.importorskip('cv2')

import pyarrow.parquet as pq  # noqa: E402
from script_loader import load_script  # noqa: E402

from robo_dopamine_ros.cli import main  # noqa: E402
from robo_dopamine_ros.core.errors import BackendStoppedError, ConfigError, ImageError  # noqa: E402
from robo_dopamine_ros.core.images import prepare  # noqa: E402
from robo_dopamine_ros.core.profiles import DEMO_GRM, GRM_2_4B  # noqa: E402
from robo_dopamine_ros.core.types import Answer, Query  # noqa: E402
from robo_dopamine_ros.lerobot.labels import COLUMNS  # noqa: E402
from robo_dopamine_ros.lerobot.layout import LeRobotV3  # noqa: E402
from robo_dopamine_ros.lerobot.relabel import Relabeller, RelabelOptions  # noqa: E402
from robo_dopamine_ros.lerobot.synthetic_dataset import (  # noqa: E402
    LEROBOT_KEYS,
    write_lerobot_dataset,
)
from robo_dopamine_ros.lerobot.video import decode_at  # noqa: E402
from robo_dopamine_ros.offline.episode import EpisodeOptions  # noqa: E402
from robo_dopamine_ros.synthetic.episode import render_episode  # noqa: E402
from robo_dopamine_ros.synthetic.spec import EpisodeSpec  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / 'robo_dopamine_ros' / 'models' / 'demo_grm'
OUTCOMES = ('success', 'fail', 'stall', 'regress')
TOP, LEFT, RIGHT = (LEROBOT_KEYS[c] for c in ('front', 'left', 'right'))


class ConstantTestDouble(load_script('eval_demo_grm').ConstantBackend):
    """The eval script's constant answer; also counts batches, records each episode's REF END,
    and can die after ``fail_after`` batches (a simulated kill)."""

    def __init__(self, text: str = '<score>+10%</score>', fail_after: int | None = None) -> None:
        super().__init__(text)
        self.model_id = 'constant-test-double'
        self.calls = 0
        self.fail_after = fail_after
        self.goals: dict[str, np.ndarray] = {}

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise BackendStoppedError('test double stopped (simulated kill)')
        self.calls += 1
        for q in queries:
            self.goals.setdefault(q.images[1].key.episode, q.images[1].pixels)
            self.goals.setdefault(f'{q.images[1].key.episode}/role', q.images[1].key.role)
        return super().generate(queries)


@pytest.fixture(scope='module')
def episodes():
    """One scene (seed 500, unseen by the demo GRM), four outcomes: same task, same goal."""
    return [render_episode(EpisodeSpec(seed=500, num_frames=30, outcome=o)) for o in OUTCOMES]


@pytest.fixture(scope='module')
def dataset(episodes, tmp_path_factory) -> Path:
    return write_lerobot_dataset(episodes, tmp_path_factory.mktemp('ds') / 'synthetic')


def _options(**kw) -> RelabelOptions:
    kw.setdefault('front', TOP)
    kw.setdefault('scoring', EpisodeOptions(frame_interval=5))
    return RelabelOptions(**kw)


def _final(table, episode: int) -> float:
    rows = [r for r in table.to_pylist() if r['episode_index'] == episode]
    return rows[-1]['progress']


# -- the layout ---------------------------------------------------------------------------------

def test_layout_several_episodes_per_file_located_by_index_and_timestamp(dataset, episodes):
    ds = LeRobotV3(dataset)
    assert ds.info['codebase_version'] == 'v3.0' and ds.fps == 15.0
    assert ds.video_keys == [TOP, LEFT, RIGHT]
    assert ds.tasks == {0: episodes[0].task}
    assert sorted(p.name for p in (dataset / 'data' / 'chunk-000').iterdir()) == [
        'file-000.parquet', 'file-001.parquet']
    metas = [ds.episode(e) for e in range(4)]
    assert [m.videos[TOP].from_s for m in metas] == [0.0, 2.0, 0.0, 2.0]
    assert [m.dataset_from_index for m in metas] == [0, 30, 60, 90]
    assert metas[3].videos[LEFT].path.name == 'file-001.mp4'
    frames = ds.frames(metas[3])
    assert frames.index == list(range(90, 120)) and frames.frame_index == list(range(30))
    # The decoded frame at from_timestamp + timestamp is that frame, not a neighbour.
    wanted = [0, 12, 25]             # frames that differ from their neighbours (motion)
    got = decode_at(metas[3].videos[TOP].path,
                    [metas[3].videos[TOP].from_s + frames.timestamp[i] for i in wanted],
                    1e-4, 'test')
    rendered = episodes[3].frames['front'].astype(int)
    for i, frame in zip(wanted, got, strict=True):
        own = np.abs(frame - rendered[i]).mean()
        others = [np.abs(frame - rendered[j]).mean() for j in (i - 1, i + 1) if 0 <= j < 30]
        assert own < 8 and all(own < o for o in others), (i, own, others)
    # A shape-[1] feature is a scalar column (lerobot's datasets.Value), not a 1-element list.
    schema = pq.read_schema(metas[0].data_path)
    assert schema.field('observation.progress_gt').type == pa.float32()
    assert ds.features['observation.progress_gt']['shape'] == [1]
    # tasks.parquet as pandas writes it: the task text is the index.
    meta = json.loads(pq.read_schema(dataset / 'meta' / 'tasks.parquet').metadata[b'pandas'])
    assert meta['index_columns'] == ['task']


def test_synth_lerobot_command_writes_a_readable_dataset(tmp_path, capsys):
    out = tmp_path / 'ds'
    assert main(['synth-lerobot', str(out), '--single-camera', '--outcomes', 'success', 'fail',
                 'stall', '--frames', '10', '--episodes-per-file', '3']) == 0
    ds = LeRobotV3(out)
    assert ds.video_keys == [TOP] and ds.episode_indices == [0, 1, 2]
    assert [ds.episode(e).videos[TOP].from_s for e in range(3)] == pytest.approx(
        [0.0, 10 / 15, 20 / 15])
    assert ds.info['total_frames'] == 30 and 'video keys' in capsys.readouterr().out


def test_av1_clip_encodes_and_decodes_through_pyav(tmp_path, episodes):
    if 'libsvtav1' not in av.codecs_available:
        pytest.skip('this PyAV build has no libsvtav1 encoder')
    root = write_lerobot_dataset(episodes[:2], tmp_path / 'av1', cameras=('front',),
                                 codec='libsvtav1')
    ds = LeRobotV3(root)
    assert ds.features[TOP]['info']['video.codec'] == 'av1'
    meta = ds.episode(1)
    frames = ds.frames(meta)
    got = decode_at(meta.videos[TOP].path, [meta.videos[TOP].from_s + frames.timestamp[i]
                                            for i in (0, 29)], 1e-4, 'test')
    rendered = episodes[1].frames['front'].astype(int)
    assert np.abs(got[0] - rendered[0]).mean() < np.abs(got[0] - rendered[29]).mean()
    assert np.abs(got[1] - rendered[29]).mean() < 10


# -- scoring quality (the committed demo GRM) ---------------------------------------------------

needs_model = pytest.mark.skipif(not (MODEL / 'model.safetensors').is_file(),
                                 reason='demo GRM not committed')


def _separation(table) -> float:
    """How far the success episode ends above the best of fail, stall and regress."""
    return _final(table, 0) - max(_final(table, e) for e in (1, 2, 3))


@needs_model
def test_demo_grm_relabel_ends_success_above_failures_and_writes_the_dataset(dataset, tmp_path,
                                                                              capsys):
    pytest.importorskip('torch')
    out = tmp_path / 'rewards.parquet'
    rc = main(['relabel-lerobot', str(dataset), '--out', str(out), '--front', TOP,
               '--left', LEFT, '--right', RIGHT, '--goal-episode', '0',
               '--frame-interval', '5', '--model', str(MODEL), '--device', 'cpu',
               '--no-progress', '--write-dataset', str(tmp_path / 'copy')])
    assert rc == 0, capsys.readouterr().err
    table = pq.read_table(out)
    assert tuple(table.column_names) == COLUMNS
    assert table.num_rows == 120 and table.column('index').to_pylist() == list(range(120))
    # Measured: success 1.00, fail 0.10, stall 0.60, regress 0.20 (separation 0.40).
    assert _final(table, 0) >= 0.9
    assert _separation(table) >= 0.25, table.to_pylist()[::5]
    rows = table.to_pylist()
    scored = [r for r in rows if r['scored']]
    assert [r['frame_index'] for r in scored[:7]] == [0, 5, 10, 15, 20, 25, 29]
    assert all(r['valid'] for r in scored)
    assert all(r['reward'] == 0.0 and r['valid'] is None for r in rows if not r['scored'])
    assert sum(r['reward'] != 0.0 for r in scored) >= 20
    # The copy: next.reward per frame, and the source is untouched.
    copy = LeRobotV3(tmp_path / 'copy')
    assert copy.features['next.reward'] == {'dtype': 'float32', 'shape': [1], 'names': None}
    data = pa.concat_tables(pq.read_table(p) for p in
                            sorted((tmp_path / 'copy' / 'data').glob('*/*.parquet')))
    by_index = dict(zip(data.column('index').to_pylist(),
                        data.column('next.reward').to_pylist(), strict=True))
    assert by_index == pytest.approx({r['index']: r['next_reward'] for r in rows}, abs=1e-6)
    assert 'next.reward' not in LeRobotV3(dataset).features
    assert 'next.reward' not in pq.read_schema(
        dataset / 'data' / 'chunk-000' / 'file-000.parquet').names
    assert copy.episode(3).videos[TOP].path.read_bytes() == \
        LeRobotV3(dataset).episode(3).videos[TOP].path.read_bytes()


@needs_model
def test_the_served_demo_grm_relabels_as_the_in_process_one(dataset, episodes, tmp_path, capsys):
    """Any backend: the openai client against a loopback server of the demo GRM (a stand-in for
    ``vllm serve``) gives the in-process numbers (greedy decoding, lossless PNG images)."""
    pytest.importorskip('torch')
    from grm_server import GrmServer

    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig

    backend = TransformersBackend(TransformersConfig(model=str(MODEL), device='cpu',
                                                     pixel_limits=DEMO_GRM.pixel_limits))
    server = GrmServer(backend, [episodes[0].task]).start()
    try:
        local = tmp_path / 'local.parquet'
        Relabeller(dataset, backend, DEMO_GRM,
                   _options(left=LEFT, right=RIGHT, goal_episode=0, episodes=(0, 1))).run(local)
        served = tmp_path / 'served.parquet'
        rc = main(['relabel-lerobot', str(dataset), '--out', str(served), '--front', TOP,
                   '--left', LEFT, '--right', RIGHT, '--goal-episode', '0', '--episodes', '0',
                   '1', '--frame-interval', '5', '--backend', 'openai', '--model', 'demo_grm',
                   '--base-url', server.url, '--image-format', 'png', '--no-progress'])
        assert rc == 0, capsys.readouterr().err
    finally:
        server.stop()
        backend.close()
    assert server.requests >= 24
    mine, theirs = pq.read_table(local), pq.read_table(served)
    for column in ('index', 'scored', 'progress', 'reward', 'valid'):
        assert mine.column(column).to_pylist() == theirs.column(column).to_pylist(), column
    assert _final(mine, 0) - _final(mine, 1) >= 0.5


def test_a_constant_answer_cannot_separate_success_from_failures(dataset, tmp_path):
    """The negative control: the demo test's margin fails for a model that ignores the pixels."""
    out = tmp_path / 'r.parquet'
    Relabeller(dataset, ConstantTestDouble(), DEMO_GRM, _options(goal_episode=0)).run(out)
    assert _separation(pq.read_table(out)) < 0.25


# -- resume and atomicity -----------------------------------------------------------------------

def test_an_interrupted_run_leaves_no_output_and_resumes_from_finished_episodes(dataset,
                                                                                tmp_path):
    out = tmp_path / 'r.parquet'
    # 7 samples per episode, the first without a query: 6 batches each; die in episode 2.
    dying = ConstantTestDouble(fail_after=14)
    with pytest.raises(BackendStoppedError):
        Relabeller(dataset, dying, DEMO_GRM, _options(goal_episode=0)).run(out)
    assert not out.exists()
    parts = tmp_path / '.r.parquet.parts'
    assert sorted(p.name for p in parts.iterdir()) == [
        'episode_000000.parquet', 'episode_000001.parquet', 'settings.json']
    # Other settings are refused, not mixed in.
    with pytest.raises(ConfigError, match='frame_interval'):
        Relabeller(dataset, ConstantTestDouble(), DEMO_GRM,
                   _options(goal_episode=0, scoring=EpisodeOptions(frame_interval=3))).run(out)
    again = ConstantTestDouble()
    relabeller = Relabeller(dataset, again, DEMO_GRM, _options(goal_episode=0))
    assert relabeller.pending_samples(out) == 14
    summary = relabeller.run(out)
    assert summary.skipped == [0, 1] and [s.episode_index for s in summary.episodes] == [2, 3]
    assert again.calls == 12 and not parts.exists()
    table = pq.read_table(out)
    assert table.column('index').to_pylist() == list(range(120))
    fresh = tmp_path / 'fresh.parquet'
    Relabeller(dataset, ConstantTestDouble(), DEMO_GRM, _options(goal_episode=0)).run(fresh)
    assert pq.read_table(fresh).to_pylist() == table.to_pylist()
    # A finished output is a resume source too: nothing left to score.
    done = ConstantTestDouble()
    assert Relabeller(dataset, done, DEMO_GRM, _options(goal_episode=0)).run(out).skipped == \
        [0, 1, 2, 3]
    assert done.calls == 0


def test_a_failed_rerun_keeps_the_previous_output_whole(dataset, tmp_path):
    out = tmp_path / 'r.parquet'
    Relabeller(dataset, ConstantTestDouble(), DEMO_GRM,
               _options(goal_episode=0, episodes=(0,))).run(out)
    before = out.read_bytes()
    with pytest.raises(BackendStoppedError):
        Relabeller(dataset, ConstantTestDouble(fail_after=3), DEMO_GRM,
                   _options(goal_episode=0, episodes=(0, 1))).run(out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if 'partial' in p.name] == []


# -- goal options -------------------------------------------------------------------------------

def _goals(dataset: Path, out: Path, **kw) -> ConstantTestDouble:
    backend = ConstantTestDouble()
    Relabeller(dataset, backend, kw.pop('profile', DEMO_GRM), _options(**kw)).run(out)
    return backend


def test_goal_options_reach_the_model(dataset, episodes, tmp_path):
    from PIL import Image

    limits = DEMO_GRM.pixel_limits
    file_goal = tmp_path / 'goal.png'
    Image.fromarray(episodes[0].goal).save(file_goal)
    by_file = _goals(dataset, tmp_path / 'file.parquet', goal=file_goal)
    assert all(np.array_equal(by_file.goals[f'episode_{e:06d}'],
                              prepare(episodes[0].goal, limits)) for e in range(4))
    per_episode = _goals(dataset, tmp_path / 'own.parquet', goal_per_episode=True)
    own = [per_episode.goals[f'episode_{e:06d}'] for e in range(4)]
    assert not np.array_equal(own[0], own[1])          # success and fail end differently
    by_episode = _goals(dataset, tmp_path / 'ep1.parquet', goal_episode=1)
    assert all(np.array_equal(by_episode.goals[f'episode_{e:06d}'], own[1]) for e in range(4))
    # The decoded last frame is the episode's last frame (mpeg4 is lossy: close, not equal).
    assert np.abs(own[1].astype(int) - prepare(episodes[1].frames['front'][-1], limits)).mean() < 6
    goalless = _goals(dataset, tmp_path / 'none.parquet', profile=GRM_2_4B)
    assert goalless.goals['episode_000000/role'] == 'blank'


def test_goal_rules_give_clear_errors(dataset, tmp_path):
    with pytest.raises(ConfigError, match=r'needs a goal image.*--goal-per-episode'):
        Relabeller(dataset, ConstantTestDouble(), DEMO_GRM, _options())
    with pytest.raises(ConfigError, match='give one goal'):
        Relabeller(dataset, ConstantTestDouble(), DEMO_GRM,
                   _options(goal_episode=0, goal_per_episode=True))
    with pytest.raises(ConfigError, match=r'episode 7 is not in .* 4 episodes \(0\.\.3\)'):
        Relabeller(dataset, ConstantTestDouble(), DEMO_GRM, _options(goal_episode=7))
    relabeller = Relabeller(dataset, ConstantTestDouble(), DEMO_GRM,
                            _options(goal=tmp_path / 'missing.png'))
    with pytest.raises(ConfigError, match='image file does not exist'):
        relabeller.run(tmp_path / 'r.parquet')
    assert list(tmp_path.iterdir()) == []


# -- bad input ----------------------------------------------------------------------------------

def test_bad_keys_and_episodes_are_refused_before_any_scoring(dataset, tmp_path):
    backend = ConstantTestDouble()
    with pytest.raises(ConfigError, match=r"'observation.images.wrist' is not a feature.*"
                                          r"observation.images.top"):
        Relabeller(dataset, backend, DEMO_GRM, _options(front='observation.images.wrist',
                                                        goal_episode=0))
    with pytest.raises(ConfigError, match="a 'float32' feature, not a video"):
        Relabeller(dataset, backend, DEMO_GRM, _options(left='observation.progress_gt',
                                                        goal_episode=0))
    with pytest.raises(ConfigError, match='episode 9 is not in'):
        Relabeller(dataset, backend, DEMO_GRM, _options(episodes=(1, 9), goal_episode=0))
    with pytest.raises(ConfigError, match='not a LeRobot dataset'):
        Relabeller(tmp_path, backend, DEMO_GRM, _options(goal_episode=0))
    assert backend.calls == 0


def test_other_versions_and_write_dataset_conflicts_are_refused(dataset, tmp_path):
    import shutil

    old = tmp_path / 'v21'
    shutil.copytree(dataset / 'meta', old / 'meta')
    info = json.loads((old / 'meta' / 'info.json').read_text())
    (old / 'meta' / 'info.json').write_text(json.dumps({**info, 'codebase_version': 'v2.1'}))
    with pytest.raises(ConfigError, match=r'v2\.1 dataset; only the v3 layout'):
        LeRobotV3(old)
    with pytest.raises(ConfigError, match=r'needs every episode scored.*\[2, 3\]'):
        Relabeller(dataset, ConstantTestDouble(), DEMO_GRM,
                   _options(goal_episode=0, episodes=(0, 1),
                            write_dataset=tmp_path / 'copy')).run(tmp_path / 'r.parquet')
    backend = ConstantTestDouble()
    (old / 'meta' / 'info.json').write_text(json.dumps(
        {**info, 'features': {**info['features'], 'next.reward': {'dtype': 'float32'}}}))
    with pytest.raises(ConfigError, match=r"has the features \['next\.reward'\] already"):
        Relabeller(old, backend, DEMO_GRM,
                   _options(goal_episode=0, write_dataset=tmp_path / 'copy2'))
    with pytest.raises(ConfigError, match='exists already'):
        Relabeller(dataset, backend, DEMO_GRM, _options(goal_episode=0, write_dataset=old))
    assert backend.calls == 0
    assert not (tmp_path / 'copy').exists() and not (tmp_path / 'copy2').exists()


def test_a_corrupt_video_is_an_error_naming_file_and_episode(episodes, tmp_path, capsys):
    root = write_lerobot_dataset(episodes[:2], tmp_path / 'ds', cameras=('front',))
    video = root / 'videos' / TOP / 'chunk-000' / 'file-000.mp4'
    data = video.read_bytes()
    video.write_bytes(data[:len(data) // 2])             # cut off: no index (moov) at the end
    with pytest.raises(ImageError, match=r'file-000\.mp4.*episode 0'):
        Relabeller(root, ConstantTestDouble(), DEMO_GRM, _options(goal_per_episode=True)).run(
            tmp_path / 'r.parquet')
    assert not (tmp_path / 'r.parquet').exists()
    video.write_bytes(b'\x00' * 1000)
    rc = main(['relabel-lerobot', str(root), '--out', str(tmp_path / 'r.parquet'),   # unbound
               '--front', TOP, '--goal-per-episode', '--backend', 'openai', '--model', 'm',
               '--architecture', 'qwen2_5_vl', '--base-url', 'http://127.0.0.1:9/v1',
               '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 1 and 'ERROR:' in err and 'file-000.mp4' in err, err


def test_a_video_shorter_than_its_episodes_is_an_error(episodes, tmp_path):
    from robo_dopamine_ros.lerobot.writer import EpisodeFrames, write_dataset

    root = write_dataset(tmp_path / 'ds', [
        EpisodeFrames('t', {TOP: episodes[0].frames['front']})], 15)
    meta = root / 'meta' / 'episodes' / 'chunk-000' / 'file-000.parquet'
    table = pq.read_table(meta)
    longer = table.set_column(table.schema.get_field_index('length'), 'length',
                              pa.array([40], pa.int64()))
    pq.write_table(longer, meta)
    with pytest.raises(ConfigError, match='holds 30 frames of episode 0, its metadata says 40'):
        Relabeller(root, ConstantTestDouble(), DEMO_GRM, _options(goal_per_episode=True)).run(
            tmp_path / 'r.parquet')
    ds = LeRobotV3(root)
    with pytest.raises(ImageError, match=r'no frame at 2\.5000 s.*cut off'):
        decode_at(ds.episode(0).videos[TOP].path, [0.0, 2.5], 1e-4, 'test')
