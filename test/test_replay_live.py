"""Replay equals the live node: the same bag, played into the running node over real DDS
(loopback, reliable QoS, nothing dropped) and replayed offline, gives the same Progress and
Reward messages, matched by AFTER stamp. The replay's bag copy holds those messages: decoded by
rclpy they equal the node's, field for field, so what Foxglove shows of a replay is what the
robot would have published."""

from __future__ import annotations

from pathlib import Path

import pytest
from node_harness import NodeHarness, differences, wait_until
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message
from robo_dopamine_ros.msg import Progress, Reward

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.bags.reader import BagReader
from robo_dopamine_ros.bags.writer import write_episode_bag
from robo_dopamine_ros.core.result import StepResult
from robo_dopamine_ros.offline.replay import ReplayOptions, replay_bag
from robo_dopamine_ros.pipeline.worker import EventKind
from robo_dopamine_ros.ros.bag_tools import play
from robo_dopamine_ros.ros.messages import progress_msg, reward_msg, time_to_ns
from robo_dopamine_ros.synthetic.episode import render_episode
from robo_dopamine_ros.synthetic.spec import EpisodeSpec

pytestmark = pytest.mark.ros


def test_replay_equals_what_the_node_publishes_for_the_played_bag(tmp_path: Path) -> None:
    episode = render_episode(EpisodeSpec(seed=8, num_frames=21, fps=10.0, size=(96, 72)))
    goal = tmp_path / 'goal.png'
    PILImage.fromarray(episode.goal).save(goal)
    params = {'task': episode.task, 'goal_image': str(goal), 'sampling.interval_s': 0.5,
              'stamps.max_age_s': 1e10}      # the episode's 2023 stamps are not "skewed" here
    with NodeHarness(params) as h:
        topics = {role: f'{h.ns}/cam_{role}' for role in ('front', 'left', 'right')}
        bag = write_episode_bag(episode, tmp_path / 'bag', topics=topics)
        results: list[StepResult] = []        # replay with the node's own parameters
        replay_bag(bag, ScriptedBackend(), h.node.config,
                   ReplayOptions(tmp_path / 'r', write_bag=tmp_path / 'out'),
                   on_result=results.append)
        assert [r.step for r in results] == [0, 1, 2, 3, 4]
        h.wait_events(EventKind.READY, EventKind.START)
        stats = play(bag, clock=False, context=h.probe.context)
        assert sum(stats.published.values()) == 63 and stats.all_acked
        progress = h.wait_progress(len(results))
        rewards = wait_until(lambda: len(h.snapshot('reward')) >= 4 and h.snapshot('reward'),
                             'four Reward messages')
    by_stamp = {time_to_ns(p.header.stamp): p for p in progress}
    assert sorted(by_stamp) == [r.stamp_after_ns for r in results]
    for result in results:
        assert differences(by_stamp[result.stamp_after_ns], progress_msg(result, 'cam_high'),
                           ignore={'latency_s'}) == [], result.step
    for got, result in zip(rewards, results[1:], strict=True):
        assert differences(got, reward_msg(result, 'cam_high')) == []
    with BagReader(tmp_path / 'out') as out:
        stored = list(out.raw(['/robo_dopamine/progress', '/robo_dopamine/reward']))
    copies = [deserialize_message(bytes(m.msg), Progress if m.topic.endswith('progress')
                                  else Reward) for m in stored]
    expected = [progress_msg(r, 'cam_high') for r in results] + [
        reward_msg(r, 'cam_high') for r in results[1:]]
    assert sorted(type(m).__name__ for m in copies) == ['Progress'] * 5 + ['Reward'] * 4
    for got in copies:
        want = next(m for m in expected if type(m) is type(got) and m.header == got.header)
        assert differences(got, want) == []
