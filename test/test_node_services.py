"""The reward node's services over real DDS (loopback), in-process: ~/reset, ~/set_task,
~/set_goal (file, request image, captured front frame) and ~/score_transition (trigger=service),
with the episode events each one publishes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from node_harness import (
    SEC,
    TASK,
    NodeHarness,
    differences,
    frame,
    wait_until,
)
from PIL import Image as PILImage
from robo_dopamine_ros.srv import ScoreTransition, SetGoal, SetTask
from std_srvs.srv import Trigger

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.engine import EpisodeEngine, Sample
from robo_dopamine_ros.files.frames import read_image
from robo_dopamine_ros.pipeline import images
from robo_dopamine_ros.pipeline.worker import EventKind
from robo_dopamine_ros.ros import convert
from robo_dopamine_ros.ros.messages import ns_to_time, progress_msg, reward_msg, time_to_ns

pytestmark = pytest.mark.ros
MS = 1_000_000


def goal_request(source: int, **fields: object) -> SetGoal.Request:
    return SetGoal.Request(source=source, **fields)


def test_node_services_change_task_goal_and_episode(tmp_path: Path) -> None:
    goal_path = tmp_path / 'goal.png'
    PILImage.fromarray(frame(7)).save(goal_path)
    with NodeHarness({'sampling.interval_s': 0.05}) as h:
        h.wait_events(EventKind.READY)
        capture = h.call(SetGoal, 'set_goal', goal_request(SetGoal.Request.CAPTURE_FRONT))
        assert not capture.success and 'no front camera frame' in capture.message
        bad = h.call(SetTask, 'set_task', SetTask.Request(task='look at <image>'))
        assert not bad.success and 'reserved marker' in bad.message
        task = h.call(SetTask, 'set_task', SetTask.Request(task=TASK))
        assert task.success and task.episode_id == ''
        assert 'needs a goal image' in task.message          # GRM-3B: refuse without a goal
        missing = h.call(SetGoal, 'set_goal', goal_request(SetGoal.Request.FROM_FILE,
                                                           path=str(tmp_path / 'nope.png')))
        assert not missing.success and 'image file does not exist' in missing.message
        wrong = h.call(SetGoal, 'set_goal', goal_request(7))
        assert not wrong.success and 'source must be FROM_FILE (0)' in wrong.message
        from_file = h.call(SetGoal, 'set_goal', goal_request(SetGoal.Request.FROM_FILE,
                                                             path=str(goal_path)))
        assert from_file.success
        first = from_file.episode_id
        t0 = time.time_ns() // MS * MS
        for i in range(2):
            h.publish_set(t0 + i * 100 * MS, i)
        assert [p.episode_id for p in h.wait_progress(2)] == [first, first]
        image = convert.rgb_to_image(frame(8), 'bgr8')
        from_image = h.call(SetGoal, 'set_goal', goal_request(SetGoal.Request.FROM_IMAGE,
                                                              image=image))
        captured = h.call(SetGoal, 'set_goal', goal_request(SetGoal.Request.CAPTURE_FRONT))
        assert from_image.success and captured.success
        assert 'captured from the front frame' in captured.message
        renamed = h.call(SetTask, 'set_task', SetTask.Request(task='fold the towel',
                                                              episode_id='towel-1'))
        assert renamed.success and renamed.episode_id == 'towel-1'
        reset = h.call(Trigger, 'reset', Trigger.Request())
        assert reset.success
        ids = [first, from_image.episode_id, captured.episode_id, 'towel-1']
        assert len(set(ids)) == 4
        after = h.publish_set(t0 + 1000 * MS, 9)
        progress = h.wait_progress(3)[-1]
        assert (progress.step, progress.task) == (0, 'fold the towel')
        assert progress.episode_id not in ids
        assert time_to_ns(progress.header.stamp) == time_to_ns(after['front'].header.stamp)
        score = h.call(ScoreTransition, 'score_transition', ScoreTransition.Request())
        assert not score.success and "needs the parameter trigger:='service'" in score.message
        events = h.wait_events(EventKind.RESET, EventKind.START)
    kinds = [e.event for e in events]
    assert kinds == [EventKind.READY, EventKind.START, EventKind.GOAL_CHANGED, EventKind.START,
                     EventKind.GOAL_CHANGED, EventKind.START, EventKind.TASK_CHANGED,
                     EventKind.START, EventKind.RESET, EventKind.START]
    changed = events[6]
    assert (changed.episode_id, changed.previous_episode_id, changed.task) == (
        'towel-1', captured.episode_id, 'fold the towel')
    assert (events[-1].episode_id, events[-1].previous_episode_id) == (
        progress.episode_id, 'towel-1')


def test_node_score_transition_scores_buffered_samples_on_demand(tmp_path: Path) -> None:
    goal_path = tmp_path / 'goal.png'
    PILImage.fromarray(frame(7)).save(goal_path)
    params = {'trigger': 'service', 'task': TASK, 'goal_image': str(goal_path)}
    with NodeHarness(params) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        t0 = time.time_ns() // MS * MS
        stamps = [t0 + i * 200 * MS for i in range(4)]
        sets = [h.publish_set(s, i) for i, s in enumerate(stamps)]
        h.wait_diagnostics(lambda a: any(kv.key == 'sync_emitted' and kv.value == '4'
                                         for s in a.status for kv in s.values),
                           'four buffered sets')
        assert h.snapshot('progress') == []             # trigger=service: nothing by itself

        def score(before: int, after: int) -> ScoreTransition.Response:
            return h.call(ScoreTransition, 'score_transition', ScoreTransition.Request(
                before_stamp=ns_to_time(before), after_stamp=ns_to_time(after)))

        fresh = score(0, stamps[1])
        assert not fresh.success and 'fresh episode needs before_stamp' in fresh.message
        unknown = score(stamps[0], stamps[3] + 10 * SEC)
        assert not unknown.success and 'no buffered synchronized sample' in unknown.message
        responses = [score(stamps[0], stamps[1]), score(stamps[1] + 2 * MS, stamps[2])]
        wrong = score(stamps[0], stamps[3])
        assert not wrong.success and 'is not the last sample' in wrong.message
        responses.append(score(0, stamps[3]))
        assert all(r.success for r in responses), [r.message for r in responses]
        published = h.wait_progress(4)
        wait_until(lambda: len(h.snapshot('reward')) == 3, 'three Reward messages')
    engine = EpisodeEngine(ScriptedBackend(), h.node.config.engine, h.node.config.profile)
    engine.start(TASK, read_image(goal_path))
    expected = [engine.step(Sample(s, **{r: images.to_rgb(m) for r, m in msgs.items()}))
                for s, msgs in zip(stamps, sets, strict=True)]
    for response, result in zip(responses, expected[1:], strict=True):
        assert differences(response.progress, progress_msg(result, 'cam_front'),
                           ignore={'latency_s'}) == []
        assert differences(response.reward, reward_msg(result, 'cam_front')) == []
    assert [(p.step, time_to_ns(p.header.stamp)) for p in published] == [
        (k, s) for k, s in enumerate(stamps)]
