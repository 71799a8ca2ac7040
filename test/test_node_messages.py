"""Engine results and events -> ROS messages (ros/messages.py), without DDS."""

from __future__ import annotations

import math

import pytest
from node_harness import SEC, TASK, frame
from robo_dopamine_ros.msg import EpisodeEvent, Progress

from robo_dopamine_ros.backends.scripted import ScriptedBackend, sequence_script
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.core.result import StepResult
from robo_dopamine_ros.pipeline.worker import EventKind, WorkerEvent
from robo_dopamine_ros.ros.messages import (
    episode_event_msg,
    ns_to_time,
    progress_msg,
    reward_msg,
    time_to_ns,
)


def results(answers: list[str]) -> list[StepResult]:
    """START, then one step if ``answers`` are given (two queries: incremental and forward are
    the same question right after START, then backward)."""
    engine = EpisodeEngine(ScriptedBackend(sequence_script(answers)), EngineConfig(), GRM_3B)
    engine.start(TASK, frame(9), episode_id='ep-1')
    return [engine.step(Sample(t * SEC + 250_000_000, frame(t), frame(t + 1), frame(t + 2)))
            for t in range(2 if answers else 1)]


def test_messages_time_round_trips_exactly() -> None:
    t = ns_to_time(1_700_000_123_456_789_012)
    assert (t.sec, t.nanosec) == (1_700_000_123, 456_789_012)
    assert time_to_ns(t) == 1_700_000_123_456_789_012
    assert time_to_ns(ns_to_time(0)) == 0


def test_messages_start_progress_has_no_reward_and_skipped_modes() -> None:
    start = results([])[0]
    msg = progress_msg(start, 'cam_high')
    assert (time_to_ns(msg.header.stamp), msg.header.frame_id) == (250_000_000, 'cam_high')
    assert time_to_ns(msg.before_stamp) == 250_000_000       # step 0: the episode start
    assert (msg.episode_id, msg.step, msg.task, msg.progress, msg.valid) == (
        'ep-1', 0, TASK, 0.0, True)
    assert msg.modes == ['incremental', 'forward', 'backward']
    assert list(msg.parse_status) == [Progress.PARSE_SKIPPED] * 3
    assert all(math.isnan(v) for v in [*msg.mode_hop, *msg.mode_progress_raw])
    assert math.isnan(msg.consistency_weight) and msg.raw_answers == ['', '', '']
    assert reward_msg(start, 'cam_high') is None


def test_messages_step_fields_follow_the_result() -> None:
    step = results(['<score>+20%</score>', '<score>-10%</score>'])[1]
    msg = progress_msg(step, 'cam_high')
    assert time_to_ns(msg.before_stamp) == 250_000_000
    assert time_to_ns(msg.header.stamp) == SEC + 250_000_000
    # Right after START incremental and forward are one query: both read the first answer.
    assert list(msg.parse_status) == [Progress.PARSE_OK] * 3
    assert msg.raw_answers == ['<score>+20%</score>', '<score>+20%</score>',
                               '<score>-10%</score>']
    assert list(msg.mode_hop) == pytest.approx([0.2, 0.2, -0.1])
    assert list(msg.mode_progress) == pytest.approx([0.2, 0.2, 0.9])
    assert msg.progress == pytest.approx((0.2 + 0.2 + 0.9) / 3)
    assert msg.valid and msg.status == 'ok' and msg.progress_raw == pytest.approx(msg.progress)
    reward = reward_msg(step, 'cam_high')
    assert reward is not None
    assert (reward.step, reward.episode_id, reward.valid, reward.reason) == (1, 'ep-1', True, '')
    assert reward.reward == pytest.approx(0.99 * msg.progress)
    assert (reward.potential_before, reward.gamma, reward.r_gold) == (0.0, 0.99, 0.0)
    assert time_to_ns(reward.before_stamp) == 250_000_000


def test_messages_invalid_step_has_nan_raw_progress_and_a_reason() -> None:
    step = results(['no score here', '<score>-10%</score>'])[1]
    msg = progress_msg(step, 'cam_high')
    assert not msg.valid and msg.status == 'partial' and math.isnan(msg.progress_raw)
    assert list(msg.parse_status) == [Progress.PARSE_FAILED, Progress.PARSE_FAILED,
                                      Progress.PARSE_OK]
    assert math.isnan(msg.mode_hop[0]) and msg.mode_hop[2] == pytest.approx(-0.1)
    reward = reward_msg(step, 'cam_high')
    assert reward is not None and not reward.valid and reward.reason == 'partial'


def test_messages_event_kinds_are_the_message_constants() -> None:
    assert {k.name: k.value for k in EventKind} == {
        name: getattr(EpisodeEvent, name) for name in (
            'READY', 'START', 'RESET', 'DONE', 'TASK_CHANGED', 'GOAL_CHANGED', 'SHUTDOWN',
            'PAUSED', 'TASK_STATUS', 'START_IS_GOAL')}
    msg = episode_event_msg(WorkerEvent(EventKind.TASK_CHANGED, 'ep-2', 'ep-1', TASK, 'why'),
                            5 * SEC, 'cam_high')
    assert (msg.event, msg.episode_id, msg.previous_episode_id, msg.task, msg.detail) == (
        EpisodeEvent.TASK_CHANGED, 'ep-2', 'ep-1', TASK, 'why')
    assert (time_to_ns(msg.header.stamp), msg.header.frame_id) == (5 * SEC, 'cam_high')
