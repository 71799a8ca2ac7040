"""A spec -> a rendered episode: scene, trajectory, frames, progress, keyframes and goal."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core.errors import ConfigError
from ..core.names import CAMERAS
from .keyframes import episode_keyframes
from .renderer import Renderer
from .scene import FAIL_CAP, make_scene
from .spec import EpisodeSpec, Outcome, SyntheticEpisode
from .trajectory import state_trajectory


def render_episode(spec: EpisodeSpec) -> SyntheticEpisode:
    """Render ``spec``: frames of the three cameras, stamps, ground-truth progress, keyframes,
    the task text and a goal image. Deterministic for a spec.

    Raises:
        ConfigError: OpenCV (``opencv-python-headless``) is not installed.
    """
    try:
        import cv2  # noqa: F401  (the renderer draws with it)
    except ImportError as e:
        raise ConfigError('rendering synthetic episodes needs OpenCV: '
                          'pip install opencv-python-headless') from e
    outcome = Outcome(spec.outcome)
    rng = np.random.default_rng(spec.seed)
    scene = make_scene(rng, miss=outcome is Outcome.FAIL)
    states = state_trajectory(outcome, spec.num_frames, rng)
    progress = np.minimum(states, FAIL_CAP) if scene.miss else states
    renderer = Renderer(scene, spec.size, spec.noise_std, rng)
    noise_idx = rng.integers(0, 1 << 30, size=(spec.num_frames, 3))
    w, h = spec.size
    frames = {cam: np.empty((spec.num_frames, h, w, 3), dtype=np.uint8) for cam in CAMERAS}
    for i, s in enumerate(states):
        st = scene.state(float(s))
        views = (renderer.front(st), renderer.wrist(st, -1), renderer.wrist(st, 1))
        for c, (cam, img) in enumerate(zip(CAMERAS, views, strict=True)):
            frames[cam][i] = renderer.add_noise(img, int(noise_idx[i, c]))
    goal = renderer.front(replace(scene, miss=False).state(1.0))
    stamps = tuple(spec.start_ns + round(i * 1e9 / spec.fps) for i in range(spec.num_frames))
    return SyntheticEpisode(
        spec=spec, task=scene.task, frames=frames, stamps_ns=stamps,
        progress=tuple(round(float(p), 6) for p in progress),
        keyframes=episode_keyframes(states, outcome, scene), goal=goal)
