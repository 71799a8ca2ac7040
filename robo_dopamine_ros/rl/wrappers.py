"""Gymnasium reward wrappers: the GRM's shaped reward for any env that shows camera images.

Both wrappers drive the one :class:`EpisodeEngine` (reset opens an episode whose START sample is
the reset observation) through any backend of the registry (``backends.factory``).

* Cameras: ``cameras`` maps the three view slots to an observation key (a dict observation) or
  ``'render'`` (``env.render()``, rgb_array); ``front`` is required, a missing wrist gets the
  front image (single view), as everywhere in this project.
* ``reward_mode``: ``shaped`` returns the GRM's shaped reward alone, ``add`` adds it to the env's.
* ``score_every_n_steps``: the model scores every n-th step (and always the last step of an
  episode); the reward then spans the macro-transition. Env steps get stamps 1 s apart and the
  engine's control period is 1 s, so ``gamma`` (the learner's discount, per env step) becomes
  ``gamma ** steps`` per scored transition, the conversion the engine uses for sample periods.
  Steps in between get GRM reward 0 and ``info['scored'] = False``.
* ``info`` (the env's own keys plus): ``scored``, ``progress``, ``valid``, ``reason``,
  ``readings`` (mode -> that mode's progress, None where unusable or not asked), ``latency_s``,
  ``task_status`` (core/monitor.py) and ``grm_reward``. **An invalid step gives
  GRM reward 0 and** ``info['valid'] = False`` (the step's progress must not be trusted, see
  core/progress.py), so a learner never receives a reward made of a failed reading. The
  engine's next transition then starts at the last unheld sample and its γ covers the held
  steps too; the wrapper pays it with the discount of the steps since the last scored one
  (``learner.link.step_reward``), since the learner discounts the earlier steps itself.

Vector envs: :class:`GrmRewardWrapper` works per env inside ``SyncVectorEnv`` (each env has its
own engine; the backend can be shared). :class:`GrmVectorRewardWrapper` wraps the vector env and
sends the queries of all envs of a step to the backend in **one** call, through the batch
dispatcher :class:`BatchDispatcher` (backends/batching.py; each env's engine steps on its own
thread; the batch goes out when all are waiting). It expects gymnasium's default ``NEXT_STEP``
autoreset: the step after an episode ended returns the reset observation, which opens that env's
next episode (reward 0).

``read_start``: the START sample's progress is 0 by definition (it is REF START), but the GRM
may read that state later at more than 0 (measured up to 0.05 on the demo GRM): a learner that
sees the start position again would find the first step worth more than any later one (waiting
at the start pays once per episode) and settle on standing still. With ``read_start`` the reset
observation is scored once more, 1 s after its START sample (env step ``t`` gets stamp
``t + 1`` s), and the potential of the episode's first state is that reading, the same function
of the observation as every later one.

For a learner, use ``engine=LEARNING_ENGINE`` (anchored readings only, see its comment): the
default paper fusion re-bases the incremental reading on the previous fused value, so its
potential depends on the path and a learner that observes the state sees a reward that changes
with its history; in bench/results/rl_learning.md tabular Q-learning learns slower and less
stably with it than with anchored readings.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np

from ..backends.batching import BatchDispatcher, EpisodeBackend
from ..core.engine import EngineConfig, EpisodeEngine, Sample
from ..core.errors import ConfigError, coerce_enum
from ..core.names import CAMERAS
from ..core.profiles import GENERIC, CheckpointProfile
from ..core.progress import FusionConfig
from ..core.result import StepResult
from ..core.types import ALL_MODES, GrmBackend, Mode
from ..learner.link import step_reward

RENDER = 'render'
#: The engine for a learner's reward: forward- and backward-anchored readings only. Each is a
#: function of the current sample (and the episode's START and goal), so the potential is a
#: function of the observation and the shaped reward is potential-based in the learner's state;
#: the incremental reading, re-based on the previous fused value, is path-dependent.
LEARNING_ENGINE = EngineConfig(fusion=FusionConfig(modes=(Mode.FORWARD, Mode.BACKWARD)))
_NS_PER_STEP = 1_000_000_000          # env steps are 1 s apart; the control period is 1 s


class RewardMode(str, enum.Enum):
    """What the wrapped env's step returns as reward."""

    SHAPED = 'shaped'     # the GRM's shaped reward alone
    ADD = 'add'           # the env's reward plus the GRM's


@dataclass(frozen=True)
class GrmRewardConfig:
    """What to ask the GRM and how to turn its answers into rewards.

    Attributes:
        task: The instruction.
        goal: REF END (RGB uint8), or None for a profile that supports goal-less use (else see
            ``EngineConfig.missing_goal``).
        cameras: View slot (``front``, ``left``, ``right``) -> observation key or ``'render'``.
        reward_mode: ``shaped`` or ``add``.
        score_every_n_steps: Score every n-th env step (and the last step of an episode).
        read_start: Also read the reset observation's progress with the GRM (see the module
            docstring); for learners.
        engine: Fusion, shaping (``gamma`` per env step), monitor; its control period is set
            to the 1 s between env steps.
        profile: The checkpoint profile of the backend's model.
    """

    task: str
    goal: np.ndarray | None = None
    cameras: Mapping[str, str] = field(default_factory=lambda: {'front': RENDER})
    reward_mode: RewardMode = RewardMode.SHAPED
    score_every_n_steps: int = 1
    read_start: bool = False
    engine: EngineConfig = field(default_factory=EngineConfig)
    profile: CheckpointProfile = GENERIC

    def __post_init__(self) -> None:
        coerce_enum(self, 'reward_mode', RewardMode)
        unknown = sorted(set(self.cameras) - set(CAMERAS))
        if unknown or 'front' not in self.cameras:
            raise ConfigError(f'cameras maps the views front (required), left and right, '
                              f'got {dict(self.cameras)!r}')
        if self.score_every_n_steps < 1:
            raise ConfigError(f'score_every_n_steps must be >= 1, '
                              f'got {self.score_every_n_steps!r}')
        shaping = replace(self.engine.shaping, control_period_s=_NS_PER_STEP / 1e9)
        object.__setattr__(self, 'engine', replace(self.engine, shaping=shaping))


class _Scorer:
    """One env's episode: which steps are scored, their samples, and rewards from results."""

    def __init__(self, backend: GrmBackend, config: GrmRewardConfig) -> None:
        self.config = config
        self.engine = EpisodeEngine(backend, config.engine, config.profile)
        self.engine.start(config.task, config.goal)     # refuses a missing goal at once
        self.t = 0
        self.last: StepResult | None = None

    def sample(self, obs: Any, render: Callable[[], Any]) -> Sample:
        """The views of this observation, stamped with the env step."""
        images: dict[str, np.ndarray] = {}
        for view, key in self.config.cameras.items():
            if key == RENDER:
                image = render()
            elif isinstance(obs, Mapping) and key in obs:
                image = obs[key]
            else:
                raise ConfigError(f'camera {view!r}: observation key {key!r} not in the '
                                  'observation')
            if image is None:
                raise ConfigError(f"camera {view!r}: env.render() returned None (make the "
                                  "env with render_mode='rgb_array')")
            images[view] = np.asarray(image)
        return Sample((self.t + self.config.read_start) * _NS_PER_STEP, **images)

    def start(self, obs: Any, render: Callable[[], Any]) -> dict[str, Any]:
        """A new episode whose START sample is ``obs`` (read again when ``read_start``)."""
        self.engine.reset()
        self.t = 0
        sample = self.sample(obs, render)
        if self.config.read_start:          # START 1 s earlier: progress 0 by definition
            self.engine.step(Sample(0, sample.front, sample.left, sample.right))
        self.last = self.engine.step(sample)
        return self.info(self.last, scored=True)

    def due(self, ended: bool) -> bool:
        """Advance one env step; is it scored?"""
        self.t += 1
        return ended or self.t % self.config.score_every_n_steps == 0

    def finish(self, result: StepResult | None) -> tuple[float, dict[str, Any]]:
        """The GRM reward and info of a step (``result`` None: not scored)."""
        if result is None:
            assert self.last is not None
            return 0.0, self.info(self.last, scored=False)
        assert self.last is not None
        reward = 0.0
        if result.reward is not None and result.valid:
            shaped, before = result.reward, result.stamp_before_ns
            assert before is not None
            last = (result.stamp_after_ns - self.last.stamp_after_ns) / (
                result.stamp_after_ns - before)
            reward = step_reward(shaped.reward, shaped.r_gold, shaped.potential_before,
                                 shaped.gamma, shaped.gamma ** last)
        self.last = result
        return reward, {**self.info(result, scored=True), 'grm_reward': reward}

    @staticmethod
    def info(result: StepResult, scored: bool) -> dict[str, Any]:
        return {'scored': scored, 'progress': result.progress,
                'valid': result.valid or not scored, 'reason': result.reason if scored else '',
                'readings': {m.value: result.reading(m).progress for m in ALL_MODES},
                'latency_s': result.latency_s if scored else 0.0,
                'task_status': result.task_status.value, 'grm_reward': 0.0,
                'confidence': {m.value: d.summary() for m in ALL_MODES
                               if scored and (d := result.reading(m).score.distribution)}}

    def total(self, env_reward: float, grm: float) -> float:
        return grm + env_reward if self.config.reward_mode is RewardMode.ADD else grm


class GrmRewardWrapper(gym.Wrapper):
    """The GRM reward for one env (module docstring); usable inside ``SyncVectorEnv``."""

    def __init__(self, env: gym.Env, backend: GrmBackend, config: GrmRewardConfig) -> None:
        super().__init__(env)
        self._scorer = _Scorer(backend, config)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, **self._scorer.start(obs, self.env.render)}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        scorer = self._scorer
        result = None
        if scorer.due(terminated or truncated):
            result = scorer.engine.step(scorer.sample(obs, self.env.render))
        grm, extra = scorer.finish(result)
        return obs, scorer.total(float(env_reward), grm), terminated, truncated, {**info, **extra}


class GrmVectorRewardWrapper(gym.vector.VectorWrapper):
    """The GRM reward for every env of a vector env, one backend call per step (docstring)."""

    def __init__(self, env: gym.vector.VectorEnv, backend: GrmBackend,
                 config: GrmRewardConfig) -> None:
        super().__init__(env)
        self.dispatcher = BatchDispatcher(backend, max_queries=1 << 30)
        self._scorers = [_Scorer(EpisodeBackend(self.dispatcher), config)
                         for _ in range(env.num_envs)]
        self._ended = np.zeros(env.num_envs, dtype=bool)
        self._pool = ThreadPoolExecutor(max_workers=env.num_envs,
                                        thread_name_prefix='grm-env')

    def _frames(self) -> Callable[[int], Any]:
        """Env i's render, rendered once per step for all envs and only when a camera needs it."""
        cache: list[Any] = []

        def frame(i: int) -> Any:
            if not cache:
                cache.append(self.env.render())
            frames = cache[0]
            return None if frames is None else frames[i]
        return frame

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        frame = self._frames()
        infos = [s.start(_index(obs, i), lambda i=i: frame(i))
                 for i, s in enumerate(self._scorers)]
        self._ended[:] = False
        return obs, {**info, **_stack(infos)}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        obs, env_rewards, terminated, truncated, info = self.env.step(actions)
        frame = self._frames()
        samples: dict[int, Sample] = {}
        infos: list[dict[str, Any]] = [{}] * self.num_envs
        for i, scorer in enumerate(self._scorers):
            render = lambda i=i: frame(i)     # noqa: E731 - bound per env
            if self._ended[i]:                # NEXT_STEP autoreset: obs is a reset observation
                infos[i] = scorer.start(_index(obs, i), render)
            elif scorer.due(bool(terminated[i] or truncated[i])):
                samples[i] = scorer.sample(_index(obs, i), render)
        results = self._score(samples)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        for i, scorer in enumerate(self._scorers):
            if self._ended[i]:
                rewards[i] = scorer.total(float(env_rewards[i]), 0.0)
                continue
            grm, infos[i] = scorer.finish(results.get(i))
            rewards[i] = scorer.total(float(env_rewards[i]), grm)
        self._ended = np.logical_or(terminated, truncated)
        return obs, rewards, terminated, truncated, {**info, **_stack(infos)}

    def _score(self, samples: dict[int, Sample]) -> dict[int, StepResult]:
        """Step the due engines concurrently: their queries meet in one backend call."""
        if not samples:
            return {}
        ready = threading.Barrier(len(samples))

        def run(i: int) -> StepResult:
            with self.dispatcher.worker():
                ready.wait()                  # all registered before any query goes out
                return self._scorers[i].engine.step(samples[i])

        futures = {i: self._pool.submit(run, i) for i in samples}
        return {i: f.result() for i, f in futures.items()}

    def close(self, **kwargs: Any) -> None:
        self._pool.shutdown(wait=True)
        super().close(**kwargs)


def _index(obs: Any, i: int) -> Any:
    """Env i's observation out of a batched (dict of) array(s)."""
    if isinstance(obs, Mapping):
        return {k: _index(v, i) for k, v in obs.items()}
    return obs[i]


def _stack(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-env info dicts as gymnasium vector infos: key -> array, ``_key`` -> which envs."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for info in infos for k in info):
        have = np.array([key in info for info in infos])
        values = [info.get(key) for info in infos]
        if key == 'readings':
            out[key] = {m.value: np.array([v[m.value] if v else None for v in values],
                                          dtype=object) for m in ALL_MODES}
        else:
            out[key] = np.array(values, dtype=object if isinstance(values[0], str) or None in
                                values else None)
        out[f'_{key}'] = have
    return out
