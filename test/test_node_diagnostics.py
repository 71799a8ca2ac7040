"""Node health counters -> DiagnosticStatus (ros/diagnostics.py), without DDS."""

from __future__ import annotations

import dataclasses

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from node_harness import SEC, TASK, diag_values, frame

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.core.result import StepResult
from robo_dopamine_ros.pipeline.input import StampProblem
from robo_dopamine_ros.pipeline.params import CameraConfig, Transport
from robo_dopamine_ros.ros.diagnostics import ModelInfo, NodeStats, gpu_memory_gib

CAMERAS = (CameraConfig('front', '/cam_high', Transport.RAW),
           CameraConfig('left', '/cam_left', Transport.COMPRESSED))
SYNC = {'emitted': 4, 'dropped_stale': 1, 'dropped_overflow': 0, 'out_of_order': 0}
MODEL = ModelInfo('scripted-test-double', 'cpu', 'episode-0001')


def steps(answer: str, count: int) -> list[StepResult]:
    """START plus ``count`` steps whose every answer is ``answer``."""
    engine = EpisodeEngine(ScriptedBackend(lambda q: answer), EngineConfig(), GRM_3B)
    engine.start(TASK, frame(9))
    return [engine.step(Sample(t * SEC, frame(t), frame(t + 1), frame(t + 2)))
            for t in range(count + 1)]


def report(stats: NodeStats, now: float, ready: bool = True,
           dropped: int = 0) -> DiagnosticArray:
    worker = {'dropped': dropped, 'superseded': 0, 'rejected': 0, 'pending': 0}
    return DiagnosticArray(status=stats.report(now, '/robo_dopamine', ready=ready, model=MODEL,
                                               sync=SYNC, worker=worker))


def test_diagnostics_camera_rate_staleness_and_problem_deltas() -> None:
    stats = NodeStats(CAMERAS, stale_after_s=0.5, constant_output_steps=20, now=0.0)
    for t in (0.1, 0.2, 0.3, 0.4):
        stats.frame(0, t)
    stats.bad_frame(0)
    stats.stamp_problem(0, StampProblem.SKEWED)
    first = report(stats, 1.0)
    assert [s.name for s in first.status] == [
        '/robo_dopamine: model', '/robo_dopamine: camera front', '/robo_dopamine: camera left',
        '/robo_dopamine: pipeline']
    front = diag_values(first, 'camera front')
    assert (front['rate_hz'], front['age_s'], front['stale'], front['bad_frames'],
            front['skewed_stamps'], front['zero_stamps']) == ('4.00', '0.600', 'true', '1', '1',
                                                             '0')
    assert front['message'] == 'stale: no frame for 0.6 s; its views are not scored'
    left = diag_values(first, 'camera left')
    assert (left['level'], left['message'], left['stale'], left['transport']) == (
        '1', 'stale: no frame yet', 'true', 'compressed')
    stats.frame(0, 1.1)
    second = diag_values(report(stats, 1.5), 'camera front')
    assert (second['level'], second['rate_hz'], second['stale']) == ('1', '2.00', 'false')
    assert second['message'] == 'bad frames or stamps since the last report'
    stats.frame(0, 1.6)
    third = diag_values(report(stats, 2.0), 'camera front')
    assert (third['level'], third['message']) == ('0', '2.0 Hz')       # no new problem


def test_diagnostics_model_latency_counts_and_readiness() -> None:
    stats = NodeStats(CAMERAS, stale_after_s=0.5, constant_output_steps=20, now=0.0)
    assert diag_values(report(stats, 0.1, ready=False), 'model')['message'] == 'loading the model'
    results = steps('<score>+10%</score>', 4)
    for latency, result in zip((0.0, 0.1, 0.2, 0.3, 0.4), results, strict=True):
        stats.result(dataclasses.replace(result, latency_s=latency))
    stats.result(steps('nothing', 1)[1])                  # unparseable: held, invalid
    model = diag_values(report(stats, 1.0), 'model')
    assert (model['level'], model['ready'], model['model_id'], model['device'],
            model['episode_id']) == ('0', 'true', 'scripted-test-double', 'cpu', 'episode-0001')
    assert (model['steps'], model['invalid_steps'], model['parse_failures']) == ('5', '1', '3')
    assert 'gpu_allocated_gib' not in model
    # START has no latency; the four steps took 0.1 .. 0.4 s, the held one almost nothing.
    assert (model['latency_p50_s'], model['latency_p95_s']) == ('0.2000', '0.3800')


def test_diagnostics_warn_when_the_model_repeats_one_answer() -> None:
    stats = NodeStats(CAMERAS, stale_after_s=0.5, constant_output_steps=3, now=0.0)
    for result in steps('<score>+10%</score>', 3):
        stats.result(result)
    stuck = diag_values(report(stats, 1.0), 'model')
    assert (stuck['level'], stuck['same_answer_steps']) == ('1', '3')
    assert stuck['message'] == 'the model gave the same answer 3 steps in a row'
    stats.result(steps('<score>-5%</score>', 1)[1])
    assert diag_values(report(stats, 2.0), 'model')['level'] == '0'


def test_diagnostics_pipeline_warns_when_samples_are_dropped() -> None:
    stats = NodeStats(CAMERAS, stale_after_s=0.5, constant_output_steps=20, now=0.0)
    stats.stale_set()
    pipeline = diag_values(report(stats, 1.0, dropped=2), 'pipeline')
    assert (pipeline['level'], pipeline['queue_dropped'], pipeline['sync_emitted'],
            pipeline['sync_dropped_stale'], pipeline['stale_sets']) == ('1', '2', '4', '1', '1')
    for index in range(len(CAMERAS)):   # fresh cameras: a stale one would warn on its own
        stats.frame(index, 1.9)
    assert diag_values(report(stats, 2.0, dropped=2), 'pipeline')['level'] == '0'
    assert report(stats, 3.0).status[0].level == DiagnosticStatus.OK


def test_diagnostics_gpu_memory_only_for_cuda_devices() -> None:
    assert gpu_memory_gib('cpu') is None
