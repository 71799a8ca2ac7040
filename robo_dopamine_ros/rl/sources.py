"""Reward sources for the learning benchmark, one episode loop and one training loop for all.

Sources (issue 26):

* ``sparse`` (a): the env's task reward, 1 at success.
* ``grm_pbrs`` (b): the GRM's shaped reward through :class:`.GrmRewardWrapper`.
* ``node`` (c): ``grm_pbrs`` through the live reward node: the observations go out on camera
  topics, the rewards come back on ``~/reward``, joined to the transitions by stamp. Given as a
  :class:`RemoteRewards` (ros/live_rewards.py implements it; this layer imports no ROS).
* ``true_pbrs`` (d): PBRS on the true progress with the package's shaping (:func:`.shape`, the
  one terminal rule): the upper bound the learner's hyperparameters are tuned on.
* ``grm_progress`` (e): the GRM's fused progress used directly as the reward (no PBRS).
* ``shuffled`` (f): the negative control, ``grm_pbrs`` rewards permuted across the steps of
  each episode (same values, no relation to the transitions).

An invalid GRM step gives reward 0 (the wrapper's rule). Learning curves count the success of
the **greedy** policy after each training episode, evaluated on the bare env (no rewards
needed): an untrained policy is a random walk.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import gymnasium as gym
import numpy as np

from ..core.engine import EngineConfig
from ..core.errors import ConfigError
from ..core.profiles import DEMO_GRM, CheckpointProfile
from ..core.shaping import shape
from ..core.types import GrmBackend
from .long_horizon import BACK, FORWARD, STAY, LongHorizonPickPlaceEnv
from .qlearning import TUNED, QConfig, QLearner, Transition
from .wrappers import GrmRewardConfig, GrmRewardWrapper

CAMERAS = {'front': 'front', 'left': 'left', 'right': 'right'}
Policy = Callable[[int, int], int]          # (position, step index) -> action


class Source(str, enum.Enum):
    """Where the learner's reward comes from (module docstring)."""

    SPARSE = 'sparse'
    GRM_PBRS = 'grm_pbrs'
    NODE = 'node'
    TRUE_PBRS = 'true_pbrs'
    GRM_PROGRESS = 'grm_progress'
    SHUFFLED = 'shuffled'

    @property
    def uses_grm(self) -> bool:
        return self in (Source.GRM_PBRS, Source.GRM_PROGRESS, Source.SHUFFLED)


class RemoteRewards(Protocol):
    """Rewards computed outside this process from the observations' cameras (source c)."""

    def open(self, task: str, goal: np.ndarray) -> None:
        """The scene's task and REF END."""

    def begin(self, views: Mapping[str, np.ndarray]) -> None:
        """An episode starts at this observation."""

    def step(self, views: Mapping[str, np.ndarray]) -> None:
        """The next observation."""

    def rewards(self, count: int) -> list[float]:
        """The rewards of the episode's first ``count`` transitions (waits for them)."""


@dataclass(frozen=True)
class RunConfig:
    """The task, the budget, the learner and the GRM reward settings of one learning run."""

    num_moves: int = 16
    max_steps: int = 40
    episodes: int = 150
    q: QConfig = TUNED
    engine: EngineConfig = field(default_factory=EngineConfig)
    profile: CheckpointProfile = DEMO_GRM
    score_every_n_steps: int = 1
    read_start: bool = False

    def __post_init__(self) -> None:
        if self.engine.shaping.gamma != self.q.gamma:
            raise ConfigError(f'PBRS needs the learner\'s discount: engine gamma '
                              f'{self.engine.shaping.gamma} != learner gamma {self.q.gamma}')


def make_env(source: Source, scene_seed: int, run: RunConfig,
             backend: GrmBackend | None) -> gym.Env:
    """The long-horizon env on one scene, wrapped with the GRM reward when the source needs it."""
    env = LongHorizonPickPlaceEnv((scene_seed,), run.num_moves, run.max_steps)
    env.reset(seed=0)
    if not source.uses_grm:
        return env
    if backend is None:
        raise ValueError(f'source {source.value} needs a GRM backend')
    return GrmRewardWrapper(env, backend, reward_config(env, run))


def reward_config(env: LongHorizonPickPlaceEnv, run: RunConfig) -> GrmRewardConfig:
    """The GRM reward settings of ``run`` on ``env``'s current scene (sources b, c, e, f)."""
    return GrmRewardConfig(env.task, env.goal, cameras=CAMERAS, engine=run.engine,
                           profile=run.profile, score_every_n_steps=run.score_every_n_steps,
                           read_start=run.read_start)


def _views(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {view: obs[key] for view, key in CAMERAS.items()}


def run_episode(env: gym.Env, source: Source, policy: Policy, run: RunConfig,
                rng: np.random.Generator, remote: RemoteRewards | None = None,
                ) -> tuple[list[Transition], bool, float]:
    """One episode under ``policy``: its transitions with the source's rewards, success, and
    the last progress (the GRM's fused progress for in-process GRM sources, else the true one).
    ``remote``: the rewards of source ``node``, asked once the episode ended."""
    if (source is Source.NODE) != (remote is not None):
        raise ValueError('remote rewards are for source node, and it needs them')
    obs, info = env.reset()
    if remote is not None:
        remote.begin(_views(obs))
    gamma, delta = run.q.gamma, run.engine.shaping.delta
    transitions: list[Transition] = []
    state, true_before, succeeded = int(obs['position']), float(info['true_progress']), False
    for t in range(10 ** 6):
        action = policy(state, t)
        obs, env_reward, terminated, truncated, info = env.step(action)
        if remote is not None:
            remote.step(_views(obs))
        true_after = float(info['true_progress'])
        if source is Source.TRUE_PBRS:
            shaped = shape(true_before, true_after, gamma, delta=delta,
                           succeeded_before=succeeded)
            reward, succeeded = shaped.reward, succeeded or shaped.success
        elif source is Source.GRM_PROGRESS:
            reward = float(info['progress']) if info['valid'] else 0.0
        else:           # sparse: env reward; GRM PBRS, shuffled: GRM's; node: replaced below
            reward = float(env_reward)
        transitions.append(Transition(state, action, reward, int(obs['position']), terminated))
        state, true_before = int(obs['position']), true_after
        if terminated or truncated:
            break
    if remote is not None:
        transitions = [Transition(t.state, t.action, r, t.next_state, t.terminal)
                       for t, r in zip(transitions, remote.rewards(len(transitions)),
                                       strict=True)]
    if source is Source.SHUFFLED:
        rewards = rng.permutation([t.reward for t in transitions])
        transitions = [Transition(t.state, t.action, float(r), t.next_state, t.terminal)
                       for t, r in zip(transitions, rewards, strict=True)]
    last = float(info['progress'] if source.uses_grm else info['true_progress'])
    return transitions, bool(transitions and transitions[-1].terminal), last


def greedy_success(env: LongHorizonPickPlaceEnv, learner: QLearner) -> bool:
    """Does the greedy policy reach the goal within the step limit (bare env)?"""
    obs, _ = env.reset()
    for _ in range(env.max_steps):
        obs, _, terminated, truncated, _ = env.step(learner.greedy(int(obs['position'])))
        if terminated or truncated:
            return terminated
    return False


@dataclass(frozen=True)
class LearningCurve:
    """One run: greedy success after each training episode, and the training returns."""

    source: Source
    scene_seed: int
    seed: int
    success: np.ndarray         # bool per episode
    returns: np.ndarray         # undiscounted return of each training episode


def train(source: Source, scene_seed: int, seed: int, run: RunConfig,
          backend: GrmBackend | None = None, remote: RemoteRewards | None = None,
          ) -> LearningCurve:
    """Train a fresh learner for ``run.episodes`` episodes with one reward source."""
    rng = np.random.default_rng(seed)
    env = make_env(source, scene_seed, run, backend)
    if remote is not None:
        remote.open(env.task, env.goal)
    probe = LongHorizonPickPlaceEnv((scene_seed,), run.num_moves, run.max_steps)
    probe.reset(seed=seed)
    learner = QLearner(run.num_moves + 1, 3, run.q, rng)
    env.reset(seed=seed)
    success, returns = [], []
    for _ in range(run.episodes):
        transitions, *_ = run_episode(env, source, lambda s, _t: learner.act(s), run, rng,
                                      remote)
        learner.learn_episode(transitions)
        returns.append(sum(t.reward for t in transitions))
        success.append(greedy_success(probe, learner))
    return LearningCurve(source, scene_seed, seed, np.array(success), np.array(returns))


def random_policy(rng: np.random.Generator) -> Policy:
    """Uniformly random actions."""
    return lambda _s, _t: int(rng.integers(3))


def random_success(scene_seed: int, run: RunConfig, episodes: int, seed: int) -> float:
    """The success rate of uniformly random actions on one scene (bare env)."""
    env = LongHorizonPickPlaceEnv((scene_seed,), run.num_moves, run.max_steps)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(episodes):
        env.reset()
        for _ in range(run.max_steps):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(3)))
            if terminated or truncated:
                wins += terminated
                break
    return wins / episodes


def cycle_policy(length: int) -> Policy:
    """``length`` moves forward, ``length`` back, repeated; ``length`` 0 stands still."""
    if length == 0:
        return lambda _s, _t: STAY
    return lambda _s, t: FORWARD if (t // length) % 2 == 0 else BACK


@dataclass(frozen=True)
class FixedPolicyReturn:
    """A fixed policy's episode under one source: undiscounted and discounted return."""

    source: Source
    scene_seed: int
    cycle_length: int           # 0: stand still
    total: float
    discounted: float
    final_progress: float       # the GRM's fused progress at the end (true progress otherwise)
    #: Discounted return from the first return to the start position on (step 2n; 1 when
    #: standing still): the repeated cycles alone, without the START sample, whose progress is
    #: 0 by definition rather than the GRM's reading of the start state.
    steady: float


def fixed_policy_return(source: Source, scene_seed: int, cycle_length: int, run: RunConfig,
                        backend: GrmBackend | None = None) -> FixedPolicyReturn:
    """The return of :func:`cycle_policy` over one episode of ``run.max_steps`` steps."""
    env = make_env(source, scene_seed, run, backend)
    rng = np.random.default_rng(0)
    transitions, _, final = run_episode(env, source, cycle_policy(cycle_length), run, rng)
    rewards = np.array([t.reward for t in transitions])
    discounts = run.q.gamma ** np.arange(len(rewards))
    first = max(2 * cycle_length, 1)
    return FixedPolicyReturn(source, scene_seed, cycle_length, float(rewards.sum()),
                             float(rewards @ discounts), final,
                             float(rewards[first:] @ discounts[:len(rewards) - first]))

