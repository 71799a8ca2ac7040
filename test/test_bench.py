"""``robo-dopamine bench`` end to end on the generated mini benchmark.

The model is the ``ScriptedBackend`` test double running an *oracle* script: it recognises each
image by a digest of its pixels, looks up the synthetic ground-truth progress of that frame and
answers the true hop. Every curve the benchmark reports must then reproduce the ground truth at
the sampled frames, in the right order and direction, which pins the protocol (pairs, reversal,
REF START/END slots, shuffling) without a model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai_server import FakeOpenAI, Reply, completion

from robo_dopamine_ros import cli
from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.images import prepare
from robo_dopamine_ros.core.types import Query
from robo_dopamine_ros.evaluation.data import FRONT_ONLY, THREE_VIEW, BenchData, write_bench_data
from robo_dopamine_ros.evaluation.runner import BenchConfig, run_benchmark
from robo_dopamine_ros.files.frames import read_image

GOOD = ['synthetic_agibot/episode_000', 'synthetic_agibot/episode_001']
GRM_META = ['model_path', 'interval', 'inverse', 'input_json', 'base_dir', 'out_root', 'sum_voc',
            'num_voc', 'avg_voc', 'backend', 'upstream_sampling', 'convention', 'extra_metrics',
            'seed']
KEY = 'sk-bench-SECRET-0815'


def _digest(pixels: np.ndarray) -> bytes:
    return hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).digest()


def true_hop(before: float, after: float) -> float:
    """The hop label of docs/upstream.md §5.1: relative to what remained, or to what was
    achieved."""
    if after >= before:
        return 0.0 if before >= 1.0 else (after - before) / (1.0 - before)
    return (after - before) / before


@pytest.fixture(scope='module')
def bench(tmp_path_factory: pytest.TempPathFactory) -> BenchData:
    return write_bench_data(tmp_path_factory.mktemp('bench'), episodes=2, num_frames=30)


@pytest.fixture(scope='module')
def truth(bench: BenchData) -> dict[bytes, float]:
    """Ground-truth progress of every frame, by the digest of its engine-prepared pixels."""
    table = {}
    for gt in bench.base_dir.glob('*/*/ground_truth.json'):
        progress = json.loads(gt.read_text())['progress']
        for cam in (p for p in gt.parent.iterdir() if p.is_dir()):
            for i, frame in enumerate(sorted(cam.iterdir())):
                table[_digest(prepare(read_image(frame)))] = progress[i]
    return table


def oracle(truth: dict[bytes, float], problems: list[str],
           override: Callable[[Query], str | None] = lambda q: None) -> ScriptedBackend:
    def script(q: Query) -> str:
        special = override(q)
        if special is not None:
            return special
        ref_start, ref_end, before, after = (truth.get(_digest(q.images[i].pixels))
                                             for i in (0, 1, 2, 5))
        if (ref_start, ref_end) != (0.0, 1.0) or before is None or after is None:
            problems.append(f'{q.images[5].key}: {ref_start} {ref_end} {before} {after}')
            return 'no idea'
        return f'<score>{100 * true_hop(before, after):+.6f}%</score>'
    return ScriptedBackend(script)


def config(bench: BenchData, out: Path, **kw: Any) -> BenchConfig:
    return BenchConfig(bench.input_json_dir, bench.base_dir, out, 'scripted', 'oracle',
                       **{'interval': 5, 'batch_size': 4, **kw})


def gt(bench: BenchData, name: str) -> list[float]:
    return json.loads((bench.base_dir / name / 'ground_truth.json').read_text())['progress']


@pytest.fixture(scope='module')
def oracle_run(bench: BenchData, truth: dict[bytes, float],
               tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[str]]:
    out = tmp_path_factory.mktemp('out')
    problems: list[str] = []
    return run_benchmark(config(bench, out), oracle(truth, problems)), out, problems


def test_bench_oracle_reproduces_ground_truth_curves(bench: BenchData, oracle_run) -> None:
    _, out, problems = oracle_run
    assert problems == []                        # every query: REF START frame 0, REF END last
    for name in [*GOOD, 'synthetic_human_egodex/episode_000']:
        dataset = THREE_VIEW if 'agibot' in name else FRONT_ONLY
        record = json.loads((out / dataset / 'episodes' / f'{name.replace("/", "__")}.json')
                            .read_text())
        progress = np.asarray(gt(bench, name))
        idx = record['indices']
        assert idx[0] == 0 and idx[-1] == len(progress) - 1 == record['num_frames'] - 1
        curves = record['curves']
        for key in ('voc+', 'fused', 'shuffled'):
            assert curves[key] == pytest.approx(progress[idx[1:]].tolist(), abs=1e-6), key
        assert curves['voc-'] == pytest.approx(progress[idx[:-1]].tolist(), abs=1e-6)
        assert record['view_layout'] == ('three-view' if dataset == THREE_VIEW
                                         else 'single-view')
        assert record['queries']['reused'] > 0


def test_bench_summary_has_upstream_schema_and_extra_metrics(oracle_run) -> None:
    summary, out, _ = oracle_run
    assert json.loads((out / 'summary_voc.json').read_text()) == summary
    assert list(summary) == ['meta', 'summary', 'extra']
    assert list(summary['meta']) == [
        'model_path', 'interval', 'input_json_dir', 'base_dir', 'out_root_dir', 'inverse_modes',
        'evaluation_list', 'backend', 'upstream_sampling', 'convention', 'extra_metrics', 'seed']
    assert summary['meta']['evaluation_list'] == [THREE_VIEW, FRONT_ONLY]
    # two good three-view episodes (VOC 1) and two broken ones, counted as 0 (GRM convention)
    assert summary['summary'][THREE_VIEW] == {'voc+': pytest.approx(0.5),
                                              'voc-': pytest.approx(0.5)}
    assert summary['summary'][FRONT_ONLY] == {'voc+': pytest.approx(1.0),
                                              'voc-': pytest.approx(1.0)}
    extra = summary['extra'][THREE_VIEW]
    assert (extra['episodes'], extra['evaluated']) == (4, 2)
    assert extra['voc+'] == {'grm': pytest.approx(0.5), 'api': pytest.approx(1.0)}
    [(front_only, missing), (short_wrist, mismatch)] = [
        (f['name'], f['reason']) for f in extra['failed_episodes']]
    assert (front_only, short_wrist) == ('synthetic_agibot/episode_front_only',
                                         'synthetic_agibot/episode_short_wrist')
    assert 'missing: cam_left_wrist, cam_right_wrist' in missing
    assert 'differ in length' in mismatch and 'cam_right_wrist=' in mismatch
    for dataset in (THREE_VIEW, FRONT_ONLY):
        e = summary['extra'][dataset]
        assert (e['voc_fused'], e['voc_shuffled']) == (pytest.approx(1.0), pytest.approx(1.0))
        assert e['kendall_tau'] == {k: pytest.approx(1.0)
                                    for k in ('voc+', 'voc-', 'fused', 'shuffled')}
        assert e['hop_sign_accuracy'] == {'forward': 1.0, 'reversed': 1.0}
        assert (e['parse_failure_rate'], e['lenient_parse_rate']) == (0.0, 0.0)
        assert e['latency_s_per_query'] >= 0.0 and e['queries']['sent'] > 0


def test_bench_writes_upstream_result_files_and_run_dirs(bench: BenchData, oracle_run) -> None:
    _, out, _ = oracle_run
    folder = out / THREE_VIEW / 'voc_negative'
    [result] = folder.glob('result_*.json')
    assert result.name == 'result_interval_5_voc-_0.500000.json'
    data = json.loads(result.read_text())
    assert list(data['meta']) == GRM_META
    assert (data['meta']['inverse'], data['meta']['num_voc']) == (True, 4)
    assert data['meta']['sum_voc'] == pytest.approx(2.0)
    assert [r['name'] for r in data['results']] == GOOD
    run = out / THREE_VIEW / 'voc_negative' / 'synthetic_agibot__episode_001'
    samples = json.loads((run / 'sample.json').read_text())
    preds = json.loads((run / 'pred_scripted.json').read_text())
    assert [list(s) for s in samples] == [['id', 'task', 'image']] * len(preds)
    record = json.loads((out / THREE_VIEW / 'episodes' / 'synthetic_agibot__episode_001.json')
                        .read_text())
    idx = record['indices']
    assert len(preds) == len(idx) - 1
    first = preds[0]
    assert first['id'] == f'step-synthetic_agibot__episode_001-0000-bf_000000-af_{idx[1]:06d}_inv'
    ep = bench.base_dir / 'synthetic_agibot/episode_001'
    assert first['image'] == [str(ep / f'cam_high/frame_{0:06d}.png'),
                              str(ep / f'cam_high/frame_{idx[-1]:06d}.png'),
                              *(str(ep / f'{c}/frame_{idx[1]:06d}.png') for c in
                                ('cam_high', 'cam_left_wrist', 'cam_right_wrist')),
                              *(str(ep / f'{c}/frame_{0:06d}.png') for c in
                                ('cam_high', 'cam_left_wrist', 'cam_right_wrist'))]
    assert first['hop'] < 0 and first['progress'] == pytest.approx(record['curves']['voc-'][0])
    assert (first['valid'], first['parse']) == (True, 'ok')
    egodex = json.loads((out / FRONT_ONLY / 'voc_positive' / 'synthetic_human_egodex__episode_000'
                         / 'sample.json').read_text())
    assert all('/cam_high/' in p and p.endswith('.jpg') for p in egodex[0]['image'])


class KilledError(Exception):
    """Stands for a kill midway."""


def test_bench_resumes_after_interruption(bench: BenchData, truth: dict[bytes, float],
                                          oracle_run, tmp_path: Path) -> None:
    done: list[str] = []

    def stop_after_two(record: dict) -> None:
        done.append(record['name'])
        if len(done) == 2:
            raise KilledError
    with pytest.raises(KilledError):
        run_benchmark(config(bench, tmp_path, batch_size=1), oracle(truth, []),
                      on_episode=stop_after_two)
    assert done == GOOD
    finished = [json.loads(p.read_text()) for p in tmp_path.glob('*/episodes/*.json')]
    assert sorted(r['name'] for r in finished if r['status'] == 'ok') == GOOD
    assert not (tmp_path / 'summary_voc.json').exists()

    backend = oracle(truth, [])
    summary = run_benchmark(config(bench, tmp_path, batch_size=1), backend)
    asked = {q.images[5].key.episode.rsplit('/', 1)[0] for b in backend.batches for q in b}
    assert asked == {f'{FRONT_ONLY}/synthetic_human_egodex/episode_000',
                     f'{FRONT_ONLY}/synthetic_human_egodex/episode_001'}
    assert summary['summary'] == oracle_run[0]['summary']

    again = oracle(truth, [])
    run_benchmark(config(bench, tmp_path, batch_size=1), again)
    assert not again.batches                     # all finished; broken ones fail before asking
    other = oracle(truth, [])
    run_benchmark(config(bench, tmp_path, interval=6, datasets=(FRONT_ONLY,)), other)
    assert other.batches                         # other settings: evaluated again
    assert {p.name for p in (tmp_path / FRONT_ONLY / 'voc_positive').glob('result_*')} == {
        'result_interval_5_voc+_1.000000.json', 'result_interval_6_voc+_1.000000.json'}


def test_bench_upstream_parity_unreadable_answer_zeroes_the_episode(
        bench: BenchData, truth: dict[bytes, float], tmp_path: Path) -> None:
    # docs/upstream.md §3.4 and §9 (upstream issue #3)
    def runaway(q: Query) -> str | None:
        key = q.images[5].key
        if key.episode.endswith('episode_001/voc+') and key.stamp_ns == 2_000_000_000:
            return '<score>-25.0.0.5.6.6.6.6'
        return None
    parity = run_benchmark(config(bench, tmp_path / 'parity', upstream_sampling=True,
                                  datasets=(THREE_VIEW,)), oracle(truth, [], runaway))
    assert parity['summary'][THREE_VIEW] == {'voc+': pytest.approx(0.25),   # (1 + 0) / 4
                                             'voc-': pytest.approx(0.5)}
    assert parity['extra'][THREE_VIEW]['parse_failure_rate'] > 0
    ours = run_benchmark(config(bench, tmp_path / 'ours', datasets=(THREE_VIEW,)),
                         oracle(truth, [], runaway))
    extra = ours['extra'][THREE_VIEW]
    assert ours['summary'][THREE_VIEW]['voc+'] != parity['summary'][THREE_VIEW]['voc+']
    assert extra['lenient_parse_rate'] > 0 and extra['parse_failure_rate'] == 0.0
    assert extra['hop_sign_accuracy']['forward'] < 1.0       # the -25 % hop has the wrong sign


def test_bench_upstream_parity_short_episode_scores_no_pair(
        bench: BenchData, truth: dict[bytes, float], tmp_path: Path) -> None:
    backend = oracle(truth, [])
    parity = run_benchmark(config(bench, tmp_path / 'p', interval=20, upstream_sampling=True,
                                  datasets=(FRONT_ONLY,)), backend)
    assert not backend.batches and parity['summary'][FRONT_ONLY] == {'voc+': 0.0, 'voc-': 0.0}
    record = json.loads((tmp_path / 'p' / FRONT_ONLY / 'episodes'
                         / 'synthetic_human_egodex__episode_000.json').read_text())
    assert 'the GRM script samples one frame' in record['notes'][0]
    ours = oracle(truth, [])
    run_benchmark(config(bench, tmp_path / 'o', interval=20, datasets=(FRONT_ONLY,)), ours)
    assert ours.batches                           # our sampler keeps first and last frame


def test_bench_cli_openai_backend_over_http(bench: BenchData, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture,
                                            caplog: pytest.LogCaptureFixture) -> None:
    # A model that always answers +10 %: a perfect voc+ (the chain is monotone), which the
    # shuffled VOC and the reversed hop signs expose.
    monkeypatch.setenv('GRM_BENCH_KEY', KEY)
    out = tmp_path / 'out'
    with FakeOpenAI(lambda n, body: Reply(body=completion('<score>+10%'))) as server:
        rc = cli.main(['bench', '--input-json-dir', str(bench.input_json_dir), '--base-dir',
                       str(bench.base_dir), '--out-root-dir', str(out), '--backend', 'openai',
                       '--model', 'gpt-test', '--architecture', 'qwen2_5_vl', '--base-url',
                       server.url, '--api-key-env',
                       'GRM_BENCH_KEY', '--interval', '5', '--datasets', FRONT_ONLY,
                       '--max-workers', '3', '--no-progress'])
    assert rc == 0 and server.requests[0].headers['Authorization'] == f'Bearer {KEY}'
    summary = json.loads((out / 'summary_voc.json').read_text())
    assert list(summary['meta'])[:2] == ['model_name', 'base_url']
    assert (summary['meta']['max_workers'], summary['meta']['convention']) == (3, 'api')
    assert summary['summary'][FRONT_ONLY]['voc+'] == pytest.approx(1.0)
    extra = summary['extra'][FRONT_ONLY]
    assert (extra['voc_shuffled'], extra['hop_sign_accuracy']['reversed']) == (0.0, 0.0)
    [result] = (out / FRONT_ONLY / 'voc_positive').glob('result_*.json')
    assert list(json.loads(result.read_text())['meta'])[-8:-5] == [
        'base_url', 'max_workers', 'batch_size']
    assert (out / FRONT_ONLY / 'voc_positive' / 'synthetic_human_egodex__episode_000'
            / 'pred_openai.json').is_file()
    written = ''.join(p.read_text() for p in out.rglob('*.json'))
    assert KEY not in written + capsys.readouterr().out + caplog.text


def test_bench_data_cli_writes_the_upstream_layout(tmp_path: Path) -> None:
    assert cli.main(['bench-data', str(tmp_path), '--episodes', '1', '--frames', '24',
                     '--no-defects']) == 0
    assert sorted(p.name for p in (tmp_path / 'jsons').iterdir()) == [
        f'{THREE_VIEW}.json', f'{FRONT_ONLY}.json']
    index = json.loads((tmp_path / 'jsons' / f'{THREE_VIEW}.json').read_text())
    assert index['sample_path_list'] == ['synthetic_agibot/episode_000']
    assert index['sample_path_task'][0].startswith('put the ')
    ep = tmp_path / 'images' / 'synthetic_agibot' / 'episode_000'
    frames = sorted((ep / 'cam_left_wrist').iterdir())
    progress = json.loads((ep / 'ground_truth.json').read_text())['progress']
    assert len(frames) == len(progress) and frames[0].name == 'frame_000000.png'
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress[-2] < 1.0
    egodex = tmp_path / 'images' / 'synthetic_human_egodex' / 'episode_000'
    assert sorted(p.name for p in egodex.iterdir()) == ['cam_high', 'ground_truth.json']
    assert next((egodex / 'cam_high').iterdir()).suffix == '.jpg'


def test_bench_rejects_missing_or_malformed_indexes(bench: BenchData, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='no dataset index'):
        run_benchmark(config(bench, tmp_path, datasets=('droid_oxe_test_100',)),
                      ScriptedBackend())
    bad = tmp_path / 'jsons'
    bad.mkdir()
    (bad / 'x.json').write_text(json.dumps({'sample_path_list': ['a'], 'sample_path_task': []}))
    with pytest.raises(ConfigError, match='1 episode paths but 0 tasks'):
        run_benchmark(BenchConfig(bad, bench.base_dir, tmp_path / 'o', 'scripted', 'm'),
                      ScriptedBackend())
