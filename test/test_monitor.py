"""The task monitor (core/monitor.py) on progress sequences, and inside the engine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.monitor import MonitorConfig, TaskMonitor, TaskStatus
from robo_dopamine_ros.core.profiles import GRM_2_4B
from robo_dopamine_ros.core.progress import FusionConfig
from robo_dopamine_ros.core.types import Mode

R, S, ST, RG = (TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.STALLED,
                TaskStatus.REGRESSING)
CONFIG = MonitorConfig(success_samples=2, stall_window=3, stall_min_gain=0.05,
                       regress_drop=0.15, regress_samples=2, recover_gain=0.1)


def run(values: list[float], valid: list[bool] | None = None,
        config: MonitorConfig = CONFIG) -> list[TaskStatus]:
    monitor = TaskMonitor(config, threshold=0.95)
    flags = valid or [True] * len(values)
    return [monitor.update(v, ok).status for v, ok in zip(values, flags, strict=True)]


def test_monitor_success_needs_k_samples_over_the_threshold() -> None:
    assert run([0.3, 0.96, 0.9, 0.96, 0.97, 0.97]) == [R, R, R, R, S, S]


def test_monitor_success_is_sticky_until_a_regression() -> None:
    # A flat 1.0 after success is not a stall; a sustained drop is a regression.
    assert run([0.96, 0.97, 1.0, 1.0, 1.0, 1.0, 0.7, 0.7]) == [R, S, S, S, S, S, S, RG]


def test_monitor_stall_after_a_window_without_gain_and_ends_on_a_new_high() -> None:
    statuses = run([0.2, 0.5, 0.52, 0.49, 0.53, 0.51, 0.62, 0.64])
    assert statuses == [R, R, R, R, ST, ST, R, R]


def test_monitor_regress_needs_a_sustained_drop_and_a_recovery_to_end() -> None:
    values = [0.4, 0.8, 0.6, 0.8, 0.6, 0.6, 0.55, 0.62, 0.66, 0.7]
    no_stall = replace(CONFIG, stall_window=20)
    assert run(values, config=no_stall) == [R, R, R, R, R, RG, RG, RG, R, R]


def test_monitor_invalid_samples_hold_the_status_and_count_for_nothing() -> None:
    values = [0.96, 0.2, 0.97]
    assert run(values, [True, False, True]) == [R, R, S]
    monitor = TaskMonitor(CONFIG, 0.95)
    assert monitor.update(0.1, valid=False).event == ''


def test_monitor_event_is_set_only_when_the_status_changes() -> None:
    monitor = TaskMonitor(CONFIG, 0.95)
    events = [monitor.update(v).event for v in (0.96, 0.97, 0.98)]
    assert events[0] == '' and events[2] == ''
    assert events[1] == 'succeeded: progress >= 0.95 for 2 samples'


def test_monitor_config_is_validated() -> None:
    with pytest.raises(ConfigError, match='stall_window must be in'):
        MonitorConfig(stall_window=1)
    with pytest.raises(ConfigError, match='success_samples must be of type int'):
        MonitorConfig(success_samples=2.5)
    with pytest.raises(ConfigError, match='regress_drop must be > 0'):
        MonitorConfig(regress_drop=0.0)


# -- inside the engine ------------------------------------------------------------------------

def frame(value: int) -> np.ndarray:
    return np.full((48, 64, 3), value, np.uint8)


def scripted(answers: list[str]) -> ScriptedBackend:
    it = iter(answers)
    return ScriptedBackend(lambda _: next(it))


def test_engine_results_carry_the_task_status_and_done_is_unchanged() -> None:
    # Incremental only: each answer is one step's hop.
    hops = ['+50%', '+80%', '+90%', '+0%', '+0%']
    config = EngineConfig(fusion=FusionConfig(modes=(Mode.INCREMENTAL,)), monitor=CONFIG)
    engine = EpisodeEngine(scripted([f'<score>{h}</score>' for h in hops]), config)
    engine.start('stack the cups', frame(250))
    results = [engine.step(Sample(i + 1, frame(10 * i))) for i in range(6)]
    assert [round(r.progress, 3) for r in results] == [0.0, 0.5, 0.9, 0.99, 0.99, 0.99]
    assert [r.task_status for r in results] == [R, R, R, R, S, S]
    assert [r.task_status_changed for r in results] == [False] * 4 + [True, False]
    assert [r.done for r in results] == [False, False, False, True, True, True]
    assert sum(r.terminal for r in results) == 1
    record = results[4].to_record()
    assert (record['task_status'], record['task_event']) == (
        'succeeded', 'succeeded: progress >= 0.95 for 2 samples')


def test_engine_goalless_episode_fuses_only_what_it_asks_and_stays_valid() -> None:
    engine = EpisodeEngine(ScriptedBackend(), EngineConfig(), GRM_2_4B)
    engine.start('t')
    results = [engine.step(Sample(i + 1, frame(20 * i))) for i in range(3)]
    assert engine.active_modes == (Mode.INCREMENTAL, Mode.FORWARD)
    assert all(r.valid for r in results), [r.reason for r in results]


def test_result_events_are_the_episode_events_a_result_raises() -> None:
    from robo_dopamine_ros.pipeline.worker import EventKind, result_events

    hops = ['+50%', '+80%', '+90%', '+0%']
    config = EngineConfig(fusion=FusionConfig(modes=(Mode.INCREMENTAL,)), monitor=CONFIG)
    engine = EpisodeEngine(scripted([f'<score>{h}</score>' for h in hops]), config)
    engine.start('stack the cups', frame(0))           # the goal looks like the start
    events = [[(e.kind, e.detail[:22], e.stamp_ns) for e in result_events(
        engine.step(Sample(i + 1, frame(i))))] for i in range(5)]
    assert events == [[(EventKind.START_IS_GOAL, 'episode start: progres', 1)], [], [],
                      [(EventKind.DONE, 'progress 0.990', 4)],
                      [(EventKind.TASK_STATUS, 'succeeded: progress >=', 5)]]
