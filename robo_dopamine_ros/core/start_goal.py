"""Start ≈ goal: a goal image that looks like the episode's start (upstream issue #11,
docs/upstream.md §9).

For a task that puts things back where they were, REF START and REF END show the same scene. The
forward reading (BEFORE = START) then measures the distance from the goal itself and the backward
reading (BEFORE = goal) reads ~1 from the very first sample, so the fused value sticks near 0.67
and success is never detected. The engine checks this once, at each episode's START sample.

Distance (cheap, documented, on the images as resized for the model): both front images are
converted to grey and box-averaged to a :data:`GRID` of cells, brightness in [0, 1]; the distance
is the **fraction of cells whose brightness differs by more than** :data:`CELL_LEVEL`. Box
averaging removes sensor noise and a small global exposure change stays below the level, while a
moved arm or object changes whole cells. Measured on the synthetic scenes (32x24 cells): start vs
goal of a pick-and-place 0.05-0.09; start vs a fresh-noise copy of itself 0.0. Episodes below
``threshold`` (default 0.02: under 2 % of the image changed) count as start ≈ goal.

Policy for such an episode (:class:`StartGoalPolicy`):

* ``incremental`` (default): fuse the incremental reading alone (forward and backward are not
  asked). Incremental hops are judged against the goal image: leaving the start reads as regress
  (progress stays at 0, where it is clamped) and coming back as progress, which the chain
  ``Φ + (1 - Φ)·H`` accumulates towards 1, so success can still be detected;
* ``off``: warn only, fuse as configured.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import ConfigError, coerce_enum

#: Cells (width, height) both images are box-averaged to.
GRID: tuple[int, int] = (32, 24)
#: Brightness difference (0-1) beyond which a cell counts as changed (20/255).
CELL_LEVEL = 0.08
DEFAULT_THRESHOLD = 0.02


class StartGoalPolicy(str, enum.Enum):
    """How an episode whose goal looks like its start is fused (module docstring)."""

    INCREMENTAL = 'incremental'
    OFF = 'off'


@dataclass(frozen=True)
class StartGoalConfig:
    """``threshold`` on :func:`changed_fraction` (0 disables the check) and the policy."""

    threshold: float = DEFAULT_THRESHOLD
    policy: StartGoalPolicy = StartGoalPolicy.INCREMENTAL

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f'start_goal threshold must be in [0, 1], got {self.threshold!r}')
        coerce_enum(self, 'policy', StartGoalPolicy)

    def matches(self, distance: float) -> bool:
        return self.threshold > 0 and distance < self.threshold


def _cells(rgb: np.ndarray) -> np.ndarray:
    grey = Image.fromarray(rgb).convert('L').resize(GRID, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float64) / 255.0


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of :data:`GRID` cells whose grey level differs by more than
    :data:`CELL_LEVEL` between two RGB uint8 images (any sizes), in [0, 1]."""
    return float(np.mean(np.abs(_cells(a) - _cells(b)) > CELL_LEVEL))
