"""What a synthetic episode is: the spec to render, the outcomes, and the rendered episode with
its labels."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, coerce_enum
from ..core.names import GOAL_FILE, GROUND_TRUTH_FILE, KEYFRAMES_FILE, TASK_FILE

#: A fixed, recognisable default start time (2023-11-14T22:13:20Z) so stamps are never zero.
DEFAULT_START_NS = 1_700_000_000_000_000_000


class Outcome(str, enum.Enum):
    """How the episode ends; each is a different ground-truth progress shape."""

    SUCCESS = 'success'   # monotone to 1.0, then holds
    FAIL = 'fail'         # grasp missed: at most the reach value (0.25), then falls
    STALL = 'stall'       # rises to about half, then freezes
    REGRESS = 'regress'   # rises to about 0.7, then the block is carried back


@dataclass(frozen=True)
class EpisodeSpec:
    """What to render. Everything random (layout, colours, light, clutter, timing) is seeded.

    Attributes:
        seed: drives every random choice; the same spec renders identical pixels.
        num_frames: frames per camera (>= 2).
        fps: frame rate; stamps are ``start_ns + round(i * 1e9 / fps)``.
        size: image ``(width, height)`` of every camera.
        outcome: an :class:`Outcome` or its value.
        start_ns: stamp of frame 0 (ROS time, ns).
        noise_std: sensor noise (std of a Gaussian, in 8-bit levels); 0 disables it. Keeps
            frames of a frozen scene from being byte-identical, as with a real camera.
    """

    seed: int = 0
    num_frames: int = 90
    fps: float = 15.0
    size: tuple[int, int] = (320, 240)
    outcome: Outcome | str = Outcome.SUCCESS
    start_ns: int = DEFAULT_START_NS
    noise_std: float = 2.0

    def __post_init__(self) -> None:
        coerce_enum(self, 'outcome', Outcome)
        if self.num_frames < 2:
            raise ConfigError(f'num_frames must be >= 2, got {self.num_frames!r}')
        if not self.fps > 0:
            raise ConfigError(f'fps must be > 0, got {self.fps!r}')
        w, h = self.size
        if w < 32 or h < 24:
            raise ConfigError(f'size must be at least (32, 24), got {self.size!r}')
        if self.start_ns <= 0:
            raise ConfigError(f'start_ns must be > 0 (a zero stamp is invalid), '
                              f'got {self.start_ns!r}')
        if self.noise_std < 0:
            raise ConfigError(f'noise_std must be >= 0, got {self.noise_std!r}')


@dataclass(frozen=True, eq=False)
class SyntheticEpisode:
    """A rendered episode.

    Attributes:
        spec: what was rendered.
        task: the instruction, e.g. ``'put the red block on the blue square'``.
        frames: camera name (:data:`CAMERAS`) -> RGB uint8 array ``(num_frames, h, w, 3)``.
        stamps_ns: per-frame stamps.
        progress: per-frame ground-truth progress in [0, 1].
        keyframes: sub-task segments in upstream ``annotated_keyframes.json`` form (0-based,
            contiguous, covering every frame; upstream spells the key ``anotation``).
        goal: the success end state seen by the front camera (RGB uint8 ``(h, w, 3)``).
    """

    spec: EpisodeSpec
    task: str
    frames: dict[str, np.ndarray]
    stamps_ns: tuple[int, ...]
    progress: tuple[float, ...]
    keyframes: list[dict[str, Any]]
    goal: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.stamps_ns)

    def ground_truth(self) -> dict[str, Any]:
        """JSON-able labels (no pixels) to store beside a bag or a video of this episode."""
        spec = self.spec
        return {
            'task': self.task,
            'outcome': Outcome(spec.outcome).value,
            'seed': spec.seed,
            'fps': spec.fps,
            'size': list(spec.size),
            'stamps_ns': list(self.stamps_ns),
            'progress': list(self.progress),
            'keyframes': self.keyframes,
        }

    def write_labels(self, folder: Path, **extra: Any) -> None:
        """Write the labels beside the frames: ``ground_truth.json`` (with ``extra``), the goal
        image, and upstream's ``annotated_keyframes.json`` and ``task_instruction.json``."""
        from PIL import Image

        def dump(name: str, data: object) -> None:
            (folder / name).write_text(json.dumps(data, indent=1) + '\n', encoding='utf-8')

        dump(GROUND_TRUTH_FILE, {**self.ground_truth(), **extra})
        dump(KEYFRAMES_FILE, self.keyframes)
        dump(TASK_FILE, [self.task])
        Image.fromarray(self.goal).save(folder / GOAL_FILE)
