"""A learner's rewards from the live reward node: cameras out, ``~/reward`` in, joined by stamps.

:class:`LiveRewards` runs the reward node in this process (a private ``rclpy.Context``, real DDS on
loopback, the node's own parameters and services) beside a learner-side node that does what an
RL node does (docs/consumers.md): it publishes the three cameras of each observation with header
stamps 1 s apart (sim time of the env step; never 0, an unset header to the node), opens an
episode per learner episode with ``~/reset`` (task and goal once, by ``~/set_task`` and
``~/set_goal``), subscribes ``~/reward`` and ``~/episode`` and attaches each reward to its own
transition with :class:`..learner.link.RewardLink` (stamps are exact: tolerance 0).

Every published sample must be scored for the rewards to be those of the in-process wrapper on
the same observations: reliable camera QoS, deep queues, a sampling interval of the 1 s between
steps and no staleness (the node parameters it adds). Episode rewards are the wrapper's rule:
``step_reward`` of a valid reward (the discount of its last step only), 0 for an invalid (held
or partial), unscored (spanned) or after-success one (the engine's ZERO terminal rule pays
nothing there); a reward that never arrives is an error, never 0.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from ..core.errors import ConfigError
from ..core.names import CAMERAS
from ..learner.link import LinkedReward, LinkStatus, RewardLink, RewardRecord
from ..msg import EpisodeEvent, Reward
from ..srv import SetGoal, SetTask
from .convert import rgb_to_image
from .node import RewardNode, load_backend

_NS_PER_S = 1_000_000_000
#: Node parameters that make it score every published sample (module docstring).
EVERY_SAMPLE = {'qos.reliability': 'reliable', 'qos.depth': 1000, 'sync.queue_size': 1000,
                'queue.length': 1000, 'sampling.interval_s': 1.0,
                'diagnostics.stale_after_s': 1e6}
EVENT_NAMES = {getattr(EpisodeEvent, n): n for n in
               ('START', 'RESET', 'TASK_CHANGED', 'GOAL_CHANGED', 'DONE', 'TASK_STATUS')}


class LiveRewards:
    """The reward node and a learner beside it (module docstring); close it (or use ``with``).

    Args:
        params: Node parameters (model, engine, reward); :data:`EVERY_SAMPLE` and the camera
            topics are added.
        read_start: Publish the reset observation twice, START then 1 s later, and begin the
            learner's episode at the second (``GrmRewardConfig.read_start``).
        timeout_s: Bound on every wait (node start, services, a step's reward).
        backend_factory: Builds the node's backend (``RewardNode``); e.g. a cache shared with an
            in-process run.
        domain_id: The DDS domain (default: ``ROS_DOMAIN_ID``).
    """

    def __init__(self, params: Mapping[str, Any], *, read_start: bool = False,
                 timeout_s: float = 120.0, backend_factory: Callable[..., Any] = load_backend,
                 domain_id: int | None = None) -> None:
        self.read_start, self.timeout_s = read_start, timeout_s
        ns = f'/rl_{uuid.uuid4().hex[:10]}'
        topics = {role: f'{ns}/cam_{role}' for role in CAMERAS}
        values = {**params, **EVERY_SAMPLE,
                  **{f'cameras.{r}.topic': t for r, t in topics.items()},
                  **{f'cameras.{r}.transport': 'raw' for r in CAMERAS}}
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self._lock = threading.Lock()
        self.link = RewardLink(tolerance_ns=0, wait_ns=round(timeout_s * _NS_PER_S))
        self._stamp = 0
        self._count = 0
        self.node: RewardNode | None = None
        self.learner = rclpy.create_node('rl_learner', context=self.context, namespace=ns)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        try:
            self.node = RewardNode(context=self.context, namespace=ns,
                                   parameter_overrides=[Parameter(k, value=v)
                                                        for k, v in values.items()],
                                   backend_factory=backend_factory)
            self._connect(topics)
        except BaseException:
            self.close()
            raise

    def _connect(self, topics: Mapping[str, str]) -> None:
        learner = self.learner
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.cameras = {role: learner.create_publisher(Image, topic, reliable)
                        for role, topic in topics.items()}
        learner.create_subscription(Reward, 'robo_dopamine/reward', self._on_reward, reliable)
        learner.create_subscription(EpisodeEvent, 'robo_dopamine/episode', self._on_event,
                                    latched)
        self.clients = {name: learner.create_client(srv_type, f'robo_dopamine/{name}')
                        for name, srv_type in (('reset', Trigger), ('set_task', SetTask),
                                               ('set_goal', SetGoal))}
        self.executor.add_node(learner)
        assert self.node is not None
        self.executor.add_node(self.node)
        self._spin.start()
        if self.node.autostart and (reason := self.node.start_up()) is not None:
            raise ConfigError(f'the reward node did not start: {reason}')
        reward_topic = f'{learner.get_namespace()}/robo_dopamine/reward'
        self._wait(lambda: all(p.get_subscription_count() > 0 for p in self.cameras.values())
                   and self.node.count_subscribers(reward_topic) > 0,
                   'the node and the learner to connect')

    # -- callbacks: they only enqueue -----------------------------------------------------------

    def _on_reward(self, msg: Reward) -> None:
        with self._lock:
            self.link.add(RewardRecord.from_msg(msg))

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.event in EVENT_NAMES:
            with self._lock:
                self.link.event(EVENT_NAMES[msg.event], msg.episode_id, msg.detail)

    # -- the learner's calls --------------------------------------------------------------------

    def open(self, task: str, goal: np.ndarray) -> None:
        """Give the node the task and REF END (each opens a node episode)."""
        self._call('set_task', SetTask.Request(task=task))
        self._call('set_goal',
                   SetGoal.Request(source=SetGoal.Request.FROM_IMAGE, image=rgb_to_image(goal)))

    def begin(self, views: Mapping[str, np.ndarray]) -> None:
        """A learner episode starts at this observation: reset the node, publish its START."""
        self._call('reset', Trigger.Request())
        stamp = self._publish(views)
        if self.read_start:
            stamp = self._publish(views)
        with self._lock:
            self.link.begin(stamp, time.monotonic_ns())
        self._count = 0

    def step(self, views: Mapping[str, np.ndarray]) -> None:
        """The learner's next observation (one env step later)."""
        stamp = self._publish(views)
        with self._lock:
            self.link.step(stamp, time.monotonic_ns())
        self._count += 1

    def rewards(self, count: int) -> list[float]:
        """The rewards of the episode's ``count`` transitions so far (waits for them)."""
        return step_rewards(self.linked(count))

    def linked(self, count: int) -> list[LinkedReward]:
        """The joined rewards of the episode's first ``count`` transitions (waits, bounded)."""
        if count > self._count:
            raise ConfigError(f'{count} transitions asked, {self._count} made')
        got: list[LinkedReward] = []
        deadline = time.monotonic() + self.timeout_s
        while len(got) < count:
            with self._lock:
                got += self.link.poll(time.monotonic_ns())
            if len(got) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f'{len(got)} of {count} rewards within '
                                       f'{self.timeout_s:g} s')
                time.sleep(0.01)
        return got

    # -- internals --------------------------------------------------------------------------------

    def _publish(self, views: Mapping[str, np.ndarray]) -> int:
        self._stamp += _NS_PER_S
        for role, publisher in self.cameras.items():
            publisher.publish(rgb_to_image(np.asarray(views.get(role, views['front'])),
                                           stamp_ns=self._stamp, frame_id=f'cam_{role}'))
        return self._stamp

    def _call(self, name: str, request: Any) -> Any:
        client = self.clients[name]
        if not client.wait_for_service(timeout_sec=self.timeout_s):
            raise TimeoutError(f'service {name} did not appear')
        future = client.call_async(request)
        self._wait(future.done, f'the {name} response')
        response = future.result()
        if not response.success:
            raise ConfigError(f'{name} refused: {response.message}')
        return response

    def _wait(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out after {self.timeout_s:g} s waiting for {what}')
            time.sleep(0.01)

    def close(self) -> None:
        """Close the node (SHUTDOWN) while the graph spins, then tear everything down."""
        if self.node is not None:
            self.node.close()
        self.executor.shutdown(timeout_sec=5.0)
        if self._spin.ident is not None:
            self._spin.join(timeout=5.0)
        if self.node is not None:
            self.node.destroy_node()
        self.learner.destroy_node()
        self.context.try_shutdown()

    def __enter__(self) -> LiveRewards:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def step_rewards(linked: list[LinkedReward]) -> list[float]:
    """The wrapper's rewards for joined transitions (module docstring).

    Raises:
        ConfigError: A transition whose reward never arrived (``MISSING``): never read as 0.
    """
    missing = [x.index for x in linked if x.status is LinkStatus.MISSING]
    if missing:
        raise ConfigError(f'transitions {missing}: reward missing, nothing to learn from')
    return [x.step_reward if x.status is LinkStatus.REWARD else 0.0 for x in linked]
