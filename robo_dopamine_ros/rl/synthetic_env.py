"""A small gymnasium env on the project's synthetic renderer: move the block onto the target.

The agent moves the task state ``s`` of a seeded pick-and-place scene (synthetic/): action 0
goes back one ``step_size``, 1 stays, 2 goes forward. Observations are the three cameras
(``front``, ``left``, ``right``, RGB uint8); ``render()`` gives the front camera. The episode
terminates at ``s = 1`` (env reward 1, the task's sparse reward) and is truncated after
``max_steps``. The true progress ``s`` is in ``info['true_progress']``, never in the
observation. It exists to try the reward wrappers without a simulator (and tests them).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from ..core.names import CAMERAS
from ..synthetic.interactive import SceneRenderer


class SyntheticPickPlaceEnv(gym.Env):
    """Pick-and-place on the synthetic renderer (module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {'render_modes': ['rgb_array']}

    def __init__(self, size: tuple[int, int] = (160, 120), step_size: float = 0.125,
                 max_steps: int = 12, render_mode: str | None = 'rgb_array') -> None:
        self.size, self.step_size, self.max_steps = size, step_size, max_steps
        self.render_mode = render_mode
        w, h = size
        image = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict({cam: image for cam in CAMERAS})
        self.action_space = gym.spaces.Discrete(3)
        self._scene: SceneRenderer | None = None
        self._views: dict[str, np.ndarray] = {}
        self._s = 0.0
        self._t = 0

    @property
    def task(self) -> str:
        return self._require().task

    @property
    def goal(self) -> np.ndarray:
        """REF END of the current scene: its success end state seen by the front camera."""
        return self._require().goal

    def _require(self) -> SceneRenderer:
        if self._scene is None:
            raise gym.error.ResetNeeded('call reset() first')
        return self._scene

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray],
                                                             dict[str, Any]]:
        super().reset(seed=seed)
        self._scene = SceneRenderer(int(self.np_random.integers(1 << 31)), self.size)
        self._s, self._t = 0.0, 0
        return self._observe(), {'true_progress': self._s}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool,
                                         dict[str, Any]]:
        self._require()
        if not self.action_space.contains(action):
            raise ValueError(f'action must be 0, 1 or 2, got {action!r}')
        self._s = float(np.clip(self._s + (int(action) - 1) * self.step_size, 0.0, 1.0))
        self._t += 1
        terminated = self._s >= 1.0
        truncated = not terminated and self._t >= self.max_steps
        return (self._observe(), float(terminated), terminated, truncated,
                {'true_progress': self._s})

    def _observe(self) -> dict[str, np.ndarray]:
        self._views = self._require().render(self._s)
        return dict(self._views)

    def render(self) -> np.ndarray | None:
        return self._views.get('front') if self.render_mode == 'rgb_array' else None
