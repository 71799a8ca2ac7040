"""A synthetic LeRobot v3 dataset: synthetic episodes with their ground-truth progress.

``robo-dopamine synth-lerobot`` writes one, the input of ``relabel-lerobot`` whose correct answer
is known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import ConfigError
from ..core.names import CAMERAS
from ..synthetic.spec import SyntheticEpisode
from .writer import EpisodeFrames, write_dataset

#: LeRobot video keys of the three cameras in :func:`write_lerobot_dataset`.
LEROBOT_KEYS: dict[str, str] = {'front': 'observation.images.top',
                                'left': 'observation.images.left_wrist',
                                'right': 'observation.images.right_wrist'}
#: The per-frame ground-truth progress feature of :func:`write_lerobot_dataset`.
LEROBOT_PROGRESS_KEY = 'observation.progress_gt'


def write_lerobot_dataset(episodes: list[SyntheticEpisode], folder: str | Path, *,
                          cameras: tuple[str, ...] = CAMERAS, codec: str = 'mpeg4',
                          episodes_per_file: int = 2) -> Path:
    """Write episodes as one LeRobot v3 dataset (``robo-dopamine relabel-lerobot``'s input).

    Cameras become :data:`LEROBOT_KEYS` videos (several episodes per file), the ground-truth
    progress the float32 feature :data:`LEROBOT_PROGRESS_KEY`. The dataset's fps is the
    episodes' (an integer, as LeRobot requires).

    Raises:
        ConfigError: ``folder`` exists, the episodes' fps differ or are not integers, or the
            codec is not in this PyAV build.
    """
    rates = {ep.spec.fps for ep in episodes}
    if len(rates) != 1 or not float(next(iter(rates))).is_integer():
        raise ConfigError(f'LeRobot needs one integer fps for all episodes, got {sorted(rates)}')
    frames = [EpisodeFrames(ep.task, {LEROBOT_KEYS[c]: ep.frames[c] for c in cameras},
                            {LEROBOT_PROGRESS_KEY: np.asarray(ep.progress, np.float32)[:, None]})
              for ep in episodes]
    return write_dataset(folder, frames, int(next(iter(rates))), codec=codec,
                         episodes_per_file=episodes_per_file, robot_type='synthetic')
