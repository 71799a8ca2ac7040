"""The example consumer: per-episode tallies, joining rewards to transitions, and DDS behaviour.

The DDS tests publish Reward/EpisodeEvent messages themselves (no reward node needed), in their
own domain and namespace, discovery on loopback only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Thread

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy is not importable: no ROS 2 here')

from node_harness import ros_environment  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from robo_dopamine_ros.msg import EpisodeEvent, Reward  # noqa: E402

from robo_dopamine_ros.ros.consumer import (  # noqa: E402
    EpisodeTally,
    RewardConsumer,
    RewardRecord,
    match_transition,
)

pytestmark = pytest.mark.ros

DOMAIN_ID = 180 + os.getpid() % 50
SECOND = 1_000_000_000


def record(step: int, reward: float, gamma: float = 0.5, *, valid: bool = True,
           done: bool = False, terminal: bool = False, episode: str = 'e') -> RewardRecord:
    """Sample k spans [k-1, k] seconds."""
    return RewardRecord(episode, step, (step - 1) * SECOND, step * SECOND, reward, gamma, done,
                        terminal, valid)


def reward_msg(r: RewardRecord) -> Reward:
    msg = Reward()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(r.after_ns, SECOND)
    msg.before_stamp.sec, msg.before_stamp.nanosec = divmod(r.before_ns, SECOND)
    msg.episode_id, msg.step, msg.reward, msg.gamma = r.episode_id, r.step, r.reward, r.gamma
    msg.done, msg.terminal, msg.valid, msg.reason = r.done, r.terminal, r.valid, r.reason
    return msg


def event_msg(event: int, episode: str, previous: str = '') -> EpisodeEvent:
    msg = EpisodeEvent()
    msg.event, msg.episode_id, msg.previous_episode_id = event, episode, previous
    msg.task = 'fold the towel'
    return msg


# One episode: valid, invalid, valid, terminal success, then one more step after success.
EPISODE = [record(1, 0.5), record(2, -0.25, valid=False), record(3, 0.25),
           record(4, 1.0, done=True, terminal=True), record(5, 1.0, done=True)]
EPISODE_SUMMARY = ("episode 'e' ended (START): 5 rewards, return 1.7500, discounted 0.6875, "
                   'done at step 4, 1 invalid (sum -0.2500, excluded), 1 after terminal')


def test_reward_record_from_msg_keeps_stamps_in_nanoseconds() -> None:
    r = RewardRecord('ep-3', 7, 1_700_000_000_250_000_000, 1_700_000_001_250_000_000, 0.125,
                     0.99, False, False, False, 'held')
    assert RewardRecord.from_msg(reward_msg(r)) == RewardRecord(
        'ep-3', 7, 1_700_000_000_250_000_000, 1_700_000_001_250_000_000, 0.125,
        pytest.approx(0.99), False, False, False, 'held')


def test_match_transition_joins_by_both_stamps_within_tolerance() -> None:
    rewards = [record(1, 0.5), record(2, 0.25), record(3, 0.125)]
    assert match_transition(rewards, 1 * SECOND + 4_000_000, 2 * SECOND - 3_000_000,
                            5_000_000) is rewards[1]


def test_match_transition_needs_the_before_stamp_to_agree_too() -> None:
    rewards = [record(1, 0.5), record(2, 0.25)]
    # AFTER matches step 2 exactly, but the learner's BEFORE is half a sample off: no reward.
    assert match_transition(rewards, SECOND // 2, 2 * SECOND, 5_000_000) is None


def test_match_transition_prefers_the_closest_candidate() -> None:
    near = RewardRecord('e', 1, 10, 1_000, 0.5, 0.5, False, False, True)
    far = RewardRecord('e', 2, 0, 1_004, 0.25, 0.5, False, False, True)
    assert match_transition([far, near], 8, 1_001, 10) is near


def test_match_transition_of_no_rewards_is_none() -> None:
    assert match_transition([], 0, SECOND, SECOND) is None


def test_episode_tally_excludes_invalid_and_post_terminal_rewards() -> None:
    tally = EpisodeTally('e')
    for r in EPISODE:
        tally.add(r)
    assert (tally.steps, tally.total, tally.discounted, tally.invalid, tally.invalid_sum,
            tally.after_terminal, tally.done_step) == (5, 1.75, 0.6875, 1, -0.25, 1, 4)
    assert tally.summary('START') == EPISODE_SUMMARY


def test_episode_tally_discount_advances_over_invalid_steps() -> None:
    tally = EpisodeTally('e')
    for r in (record(1, 0.0, 0.5, valid=False), record(2, 1.0, 0.25)):
        tally.add(r)
    # The invalid first transition still took time: the second reward is discounted by its γ.
    assert (tally.total, tally.discounted, tally.discount) == (1.0, 0.5, 0.125)


def test_episode_tally_ignores_a_non_finite_gamma() -> None:
    tally = EpisodeTally('e')
    for r in (record(1, 0.0, float('nan'), valid=False), record(2, 1.0)):
        tally.add(r)
    assert (tally.discounted, tally.discount) == (1.0, 0.5)


# --- Over DDS ----------------------------------------------------------------------------------

class Bench:
    """Consumer and publisher nodes in a private context spun on a thread (house style 13)."""

    def __init__(self) -> None:
        self.ns = f'/rdr_consumer_{uuid.uuid4().hex[:10]}'
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.talker = Node('rdr_consumer_talker', namespace=self.ns, context=self.context)
        self.reward_pub = self.talker.create_publisher(
            Reward, 'robo_dopamine/reward',
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.event_pub = self.talker.create_publisher(
            EpisodeEvent, 'robo_dopamine/episode',
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.executor.add_node(self.talker)
        self.thread = Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def consumer(self) -> RewardConsumer:
        node = RewardConsumer(namespace=self.ns, context=self.context)
        self.executor.add_node(node)
        wait_for('the consumer to match both publishers', lambda: (
            self.reward_pub.get_subscription_count() >= 1
            and self.event_pub.get_subscription_count() >= 1))
        return node

    def close(self) -> None:
        self.executor.shutdown()
        for node in self.executor.get_nodes():
            node.destroy_node()
        self.context.try_shutdown()
        self.thread.join(timeout=10.0)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.05)


@pytest.fixture
def bench() -> Iterator[Bench]:
    b = Bench()
    yield b
    b.close()


def test_consumer_tallies_an_episode_received_over_dds(bench: Bench) -> None:
    consumer = bench.consumer()
    bench.event_pub.publish(event_msg(EpisodeEvent.START, 'e'))
    wait_for('episode e to open', lambda: 'e' in consumer.open)
    for r in EPISODE:
        bench.reward_pub.publish(reward_msg(r))
    wait_for('all rewards', lambda: consumer.open['e'].steps == len(EPISODE))
    bench.event_pub.publish(event_msg(EpisodeEvent.START, 'f', previous='e'))
    wait_for('episode e to end', lambda: len(consumer.ended) == 1)
    tally, cause = consumer.ended[0]
    assert tally.summary(cause) == EPISODE_SUMMARY
    assert list(consumer.open) == ['f']


def test_consumer_started_late_learns_the_current_episode_from_the_latched_events(
        bench: Bench) -> None:
    for event in (event_msg(EpisodeEvent.READY, ''), event_msg(EpisodeEvent.START, 'a'),
                  event_msg(EpisodeEvent.TASK_CHANGED, 'b', previous='a')):
        bench.event_pub.publish(event)
    consumer = bench.consumer()
    wait_for('the latched events', lambda: 'b' in consumer.open)
    assert [(t.episode_id, t.steps, cause) for t, cause in consumer.ended] == [
        ('a', 0, 'TASK_CHANGED')]
    assert list(consumer.open) == ['b']


def test_consumer_drops_a_reward_that_arrives_after_its_episode_ended(bench: Bench) -> None:
    consumer = bench.consumer()
    bench.event_pub.publish(event_msg(EpisodeEvent.START, 'a'))
    bench.event_pub.publish(event_msg(EpisodeEvent.RESET, 'b', previous='a'))
    wait_for('episode a to end', lambda: len(consumer.ended) == 1)
    bench.reward_pub.publish(reward_msg(record(1, 0.5, episode='a')))
    bench.reward_pub.publish(reward_msg(record(1, 0.25, episode='b')))
    wait_for('the reward of b', lambda: consumer.open['b'].steps == 1)
    assert consumer.ended[0][0].steps == 0
    assert consumer.open['b'].total == 0.25


def test_installed_consumer_logs_the_summary_line_per_episode(bench: Bench, repo_root: Path,
                                                              tmp_path: Path) -> None:
    exe = repo_root / 'install' / 'robo_dopamine_ros' / 'lib' / 'robo_dopamine_ros' / \
        'reward_consumer'
    log = tmp_path / 'consumer.log'
    # Debug level for the consumer's logger only: its per-step lines tell when rewards are in.
    logger = f"{bench.ns.strip('/')}.reward_consumer"
    with log.open('wb') as out:
        proc = subprocess.Popen(
            [str(exe), '--ros-args', '-r', f'__ns:={bench.ns}', '-p', 'reward_node:=rd',
             '--log-level', f'{logger}:=debug'],
            cwd=tmp_path, env=ros_environment(repo_root, DOMAIN_ID), stdout=out,
            stderr=subprocess.STDOUT)
    try:
        reward_pub = bench.talker.create_publisher(
            Reward, 'rd/reward', QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        event_pub = bench.talker.create_publisher(
            EpisodeEvent, 'rd/episode',
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        event_pub.publish(event_msg(EpisodeEvent.START, 'e'))
        wait_for('the consumer process to subscribe', lambda: (
            reward_pub.get_subscription_count() >= 1
            and event_pub.get_subscription_count() >= 1), timeout=60.0)
        for r in EPISODE:
            reward_pub.publish(reward_msg(r))
        # The two topics are not ordered: end episode e only once all its rewards are in.
        wait_for('the rewards of e', lambda: 'e step 5:' in log.read_text())
        event_pub.publish(event_msg(EpisodeEvent.START, 'f', previous='e'))
        wait_for('the summary line', lambda: EPISODE_SUMMARY in log.read_text())
        reward_pub.publish(reward_msg(record(1, 0.5, episode='f')))
        wait_for('the reward of f', lambda: 'f step 1:' in log.read_text())
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=20)
    text = log.read_text()
    assert rc == 0, text
    assert "episode 'f' ended (consumer stopped): 1 rewards, return 0.5000" in text
