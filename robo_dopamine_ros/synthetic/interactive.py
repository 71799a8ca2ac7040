"""One seeded scene rendered at any task state an agent chooses (the gymnasium envs of ``rl/``)."""

from __future__ import annotations

import numpy as np

from ..core.names import CAMERAS
from .renderer import Renderer
from .scene import make_scene
from .spec import EpisodeSpec


class SceneRenderer:
    """One seeded scene rendered at any task state, for interactive use (the gymnasium env).

    Episodes render a fixed trajectory; an agent chooses the state instead. The scene (layout,
    colours, light) and the goal are those of :func:`render_episode` with the same seed.
    """

    def __init__(self, seed: int, size: tuple[int, int] = (320, 240),
                 noise_std: float = 2.0) -> None:
        EpisodeSpec(seed=seed, size=size, noise_std=noise_std)        # validates the arguments
        self._rng = np.random.default_rng(seed)
        self.scene = make_scene(self._rng, miss=False)
        self._renderer = Renderer(self.scene, size, noise_std, self._rng)
        self.task = self.scene.task
        self.goal = self._renderer.front(self.scene.state(1.0))

    def render(self, s: float) -> dict[str, np.ndarray]:
        """The three cameras (:data:`CAMERAS`) at task state ``s`` in [0, 1], fresh noise."""
        st = self.scene.state(min(max(float(s), 0.0), 1.0))
        r = self._renderer
        views = (r.front(st), r.wrist(st, -1), r.wrist(st, 1))
        offsets = self._rng.integers(0, 1 << 30, size=3)
        return {cam: r.add_noise(img, int(o))
                for cam, img, o in zip(CAMERAS, views, offsets, strict=True)}
