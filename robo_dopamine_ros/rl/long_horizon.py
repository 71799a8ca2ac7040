"""A long-horizon pick-and-place task where the sparse reward fails within a learning budget.

:class:`LongHorizonPickPlaceEnv` is :class:`.SyntheticPickPlaceEnv` with ``num_moves`` forward
moves between start and success (default 16) and a step limit (default 40): action 0 undoes
one move, 1 stays, 2 advances one. A random policy almost never succeeds (≈ 1 %, see
bench/results/rl_learning.md), so an untuned learner with a sparse reward hardly ever sees the
success it should learn from. What makes it usable for learning curves:

* **Low-dimensional state for the policy**: ``obs['position']`` (0..num_moves) next to the three
  cameras; the cameras are for the GRM only.
* **Reproducible from seeds**: the scene comes from ``scene_seeds`` (``options={'scene_seed':
  s}`` picks one, else the env's generator does), every seed below :data:`HELD_OUT_SEED_LIMIT`:
  scenes the demo GRM never saw (scripts/train_demo_grm.py trains on seeds >= 10 000).
* **One image per state**: each position is rendered once per scene (the camera noise is frozen
  with it), so the same state always shows the same pixels and GRM readings can be cached by
  image digest (:mod:`.grm_cache`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from ..core.errors import ConfigError
from ..synthetic.interactive import SceneRenderer
from .synthetic_env import SyntheticPickPlaceEnv

#: Scene seeds the demo GRM never trained on are below this (scripts/train_demo_grm.py).
HELD_OUT_SEED_LIMIT = 10_000
BACK, STAY, FORWARD = 0, 1, 2


class LongHorizonPickPlaceEnv(SyntheticPickPlaceEnv):
    """``num_moves`` moves to the goal, position observed, one image per state (module doc)."""

    def __init__(self, scene_seeds: Sequence[int] = (0,), num_moves: int = 16,
                 max_steps: int = 40, size: tuple[int, int] = (160, 120),
                 noise_std: float = 2.0) -> None:
        if num_moves < 1 or max_steps < 1:
            raise ConfigError(f'num_moves and max_steps must be >= 1, got {num_moves!r}, '
                              f'{max_steps!r}')
        seeds = tuple(int(s) for s in scene_seeds)
        if not seeds or any(not 0 <= s < HELD_OUT_SEED_LIMIT for s in seeds):
            raise ConfigError(f'scene seeds must be in [0, {HELD_OUT_SEED_LIMIT}) (scenes the '
                              f'demo GRM never trained on), got {seeds!r}')
        super().__init__(size, 1.0 / num_moves, max_steps)
        self.scene_seeds, self.num_moves, self.noise_std = seeds, num_moves, noise_std
        self.observation_space = gym.spaces.Dict(
            {**self.observation_space.spaces, 'position': gym.spaces.Discrete(num_moves + 1)})
        self.scene_seed: int | None = None
        self._frames: list[dict[str, np.ndarray]] = []

    @property
    def position(self) -> int:
        """Moves done so far, 0..num_moves (the policy's state)."""
        return round(self._s * self.num_moves)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        gym.Env.reset(self, seed=seed)
        chosen = (options or {}).get('scene_seed')
        if chosen is None:
            chosen = self.scene_seeds[int(self.np_random.integers(len(self.scene_seeds)))]
        elif chosen not in self.scene_seeds:
            raise ConfigError(f'scene_seed {chosen!r} is not one of {self.scene_seeds!r}')
        if chosen != self.scene_seed:
            self._scene = SceneRenderer(int(chosen), self.size, self.noise_std)
            self._frames = [self._scene.render(k / self.num_moves)
                            for k in range(self.num_moves + 1)]
            self.scene_seed = int(chosen)
        self._s, self._t = 0.0, 0
        return self._observe(), {'true_progress': self._s, 'scene_seed': self.scene_seed}

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Moves on the integer grid (no float drift over many moves), else as the base env."""
        self._require()
        if not self.action_space.contains(action):
            raise ValueError(f'action must be 0, 1 or 2, got {action!r}')
        position = min(max(self.position + int(action) - 1, 0), self.num_moves)
        self._s = position / self.num_moves
        self._t += 1
        terminated = position == self.num_moves
        truncated = not terminated and self._t >= self.max_steps
        return (self._observe(), float(terminated), terminated, truncated,
                {'true_progress': self._s, 'scene_seed': self.scene_seed})

    def _observe(self) -> dict[str, Any]:
        self._require()
        self._views = self._frames[self.position]
        return {**self._views, 'position': self.position}
