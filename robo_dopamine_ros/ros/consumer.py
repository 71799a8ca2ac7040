"""Example learner-side node: per-episode return from the reward node's ``~/reward``/``~/episode``.

``ros2 run robo_dopamine_ros reward_consumer [--ros-args -r __ns:=/robot1]`` subscribes to
``<reward_node>/reward`` and ``<reward_node>/episode`` (parameter ``reward_node``, default
``robo_dopamine``: relative, so a consumer in the node's namespace finds it) and logs one summary
line per episode. It is the shape an RL or teleop node needs:

* **Episode boundaries come from ``~/episode``** (START, RESET, TASK_CHANGED, GOAL_CHANGED close
  the episodes before them; SHUTDOWN closes all). That topic is TRANSIENT_LOCAL, so the
  subscription must be too: a consumer started late then still learns the current episode.
* **Invalid rewards are never learned from**: they are counted and summed apart, outside the
  return.
* **The return stops at the terminal transition**: with potential-based shaping the episode ends
  at the first success (``terminal``); the node keeps scoring after it (``done`` latches), and
  those later rewards are counted but not added.
* **Discounting uses each message's own γ** (already converted to the time between its BEFORE and
  AFTER samples): the discount of step k is the product of the γ of the transitions before it,
  valid or not, since time passed either way.

To give a reward to a learner's own transition, join by stamps: ``match_transition``, or the
whole learner-side rules (bounded wait, held spans, terminal rule) in ``learner.link.RewardLink``.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from robo_dopamine_ros.learner.link import RewardRecord, match_transition, stamp_ns
from robo_dopamine_ros.msg import EpisodeEvent, Reward

# Events that open a new episode and so end every other one.
OPENING_EVENTS = {
    EpisodeEvent.START: 'START', EpisodeEvent.RESET: 'RESET',
    EpisodeEvent.TASK_CHANGED: 'TASK_CHANGED', EpisodeEvent.GOAL_CHANGED: 'GOAL_CHANGED',
}
# Ended episodes remembered (bounded: a node runs for days), to recognise a reward that arrives
# after its episode's end event: the two topics are not ordered with respect to each other.
ENDED_MEMORY = 64
__all__ = ['RewardConsumer', 'RewardRecord', 'match_transition', 'stamp_ns']


@dataclass
class EpisodeTally:
    """Running totals of one episode, as a learner would account for them."""

    episode_id: str
    _: KW_ONLY
    steps: int = 0              # rewards received
    total: float = 0.0          # undiscounted return (valid rewards up to the terminal one)
    discounted: float = 0.0     # discounted return with the per-message γ
    discount: float = 1.0       # discount of the next reward: product of the γ so far
    invalid: int = 0            # rewards flagged invalid (excluded)
    invalid_sum: float = 0.0    # what the excluded rewards would have added
    after_terminal: int = 0     # rewards after the terminal transition (excluded)
    done_step: int | None = None

    def add(self, record: RewardRecord) -> None:
        """Account for one reward."""
        self.steps += 1
        if record.done and not record.terminal:
            self.after_terminal += 1
            return
        if record.terminal:
            self.done_step = record.step
        if record.valid:
            self.total += record.reward
            self.discounted += self.discount * record.reward
        else:
            self.invalid += 1
            self.invalid_sum += record.reward
        if math.isfinite(record.gamma):
            self.discount *= record.gamma

    def summary(self, cause: str) -> str:
        """One line for the log when the episode ends."""
        done = 'not done' if self.done_step is None else f'done at step {self.done_step}'
        return (f'episode {self.episode_id!r} ended ({cause}): {self.steps} rewards, '
                f'return {self.total:.4f}, discounted {self.discounted:.4f}, {done}, '
                f'{self.invalid} invalid (sum {self.invalid_sum:.4f}, excluded), '
                f'{self.after_terminal} after terminal')


class RewardConsumer(Node):
    """Tallies rewards per episode and logs a summary line at each episode end."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__('reward_consumer', **kwargs)
        reward_node = self.declare_parameter('reward_node', 'robo_dopamine').value
        self.open: dict[str, EpisodeTally] = {}
        self.ended: deque[tuple[EpisodeTally, str]] = deque(maxlen=ENDED_MEMORY)
        self.create_subscription(Reward, f'{reward_node}/reward', self.reward_callback,
                                 QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(
            EpisodeEvent, f'{reward_node}/episode', self.episode_callback,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))

    def reward_callback(self, msg: Reward) -> None:
        """Add a reward to its episode (opening it if the consumer joined mid-episode)."""
        record = RewardRecord.from_msg(msg)
        if any(tally.episode_id == record.episode_id for tally, _ in self.ended):
            self.get_logger().warning(
                f'reward step {record.step} of ended episode {record.episode_id!r} arrived '
                'after its end event; not counted')
            return
        tally = self.open.setdefault(record.episode_id, EpisodeTally(record.episode_id))
        tally.add(record)
        self.get_logger().debug(f'{record.episode_id} step {record.step}: r={record.reward:+.4f}'
                                f' valid={record.valid} done={record.done}')

    def episode_callback(self, msg: EpisodeEvent) -> None:
        """Close episodes on boundary events; log readiness and success."""
        if msg.event in OPENING_EVENTS:
            self._close(lambda eid: eid != msg.episode_id, OPENING_EVENTS[msg.event])
            self.open.setdefault(msg.episode_id, EpisodeTally(msg.episode_id))
        elif msg.event in (EpisodeEvent.SHUTDOWN, EpisodeEvent.PAUSED):
            self.close_all('SHUTDOWN' if msg.event == EpisodeEvent.SHUTDOWN else 'PAUSED')
        elif msg.event == EpisodeEvent.DONE:
            self.get_logger().info(f'episode {msg.episode_id!r} reached success')
        elif msg.event == EpisodeEvent.READY:
            self.get_logger().info(f'reward node ready ({msg.detail})')

    def close_all(self, cause: str) -> None:
        """End every open episode, e.g. when the consumer itself stops."""
        self._close(lambda eid: True, cause)

    def _close(self, which: Callable[[str], bool], cause: str) -> None:
        for eid in [e for e in self.open if which(e)]:
            tally = self.open.pop(eid)
            self.ended.append((tally, cause))
            # Episodes replayed from the latched history without rewards are not news.
            if tally.steps:
                self.get_logger().info(tally.summary(cause))


def main(args: list[str] | None = None) -> int:
    """Spin until SIGINT or shutdown; the open episode is summarised on the way out."""
    rclpy.init(args=args)
    node = RewardConsumer()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # the normal way to stop
    finally:
        node.close_all('consumer stopped')
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
