"""Plain data passed between the engine, the backends and the adapters."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .confidence import ScoreDistribution
from .errors import BackendError
from .prompt import NUM_IMAGES, PromptVariant


class Mode(str, enum.Enum):
    """The three readings of a hop (docs/upstream.md §4.1, paper Eq. 4-7)."""

    INCREMENTAL = 'incremental'   # BEFORE = the previous sample
    FORWARD = 'forward'           # BEFORE = the episode's START sample
    BACKWARD = 'backward'         # BEFORE = the goal image in all three view slots


ALL_MODES: tuple[Mode, ...] = (Mode.INCREMENTAL, Mode.FORWARD, Mode.BACKWARD)


@dataclass(frozen=True)
class ImageKey:
    """Stable identity of an image, so a backend can recognise an image it has already encoded.

    ``role`` is a camera view (``front``, ``left``, ``right``) or ``goal``/``blank``; ``stamp_ns``
    is the sample's header time (the goal uses the time it was set).
    """

    episode: str
    role: str
    stamp_ns: int


@dataclass(frozen=True, eq=False)
class KeyedImage:
    """An RGB uint8 HxWx3 image already resized for the model, with its key."""

    key: ImageKey
    pixels: np.ndarray

    def __post_init__(self) -> None:
        a = self.pixels
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f'KeyedImage needs RGB uint8 HxWx3, got {a.dtype} {a.shape}')


@dataclass(frozen=True)
class Views:
    """One synchronized sample's three view slots (front, left wrist, right wrist)."""

    front: KeyedImage
    left: KeyedImage
    right: KeyedImage

    def as_tuple(self) -> tuple[KeyedImage, KeyedImage, KeyedImage]:
        return (self.front, self.left, self.right)


@dataclass(frozen=True)
class Query:
    """One GRM question: the task and the 8 images in prompt slot order."""

    task: str
    images: tuple[KeyedImage, ...]
    mode: Mode
    variant: PromptVariant = PromptVariant.INFERENCE

    def __post_init__(self) -> None:
        if len(self.images) != NUM_IMAGES:
            raise ValueError(f'a query takes {NUM_IMAGES} images, got {len(self.images)}')


@dataclass(frozen=True)
class Answer:
    """A backend's answer to one query: the generated text, or why there is none."""

    text: str
    error: str | None = None
    meta: dict[str, float] = field(default_factory=dict)
    #: The model's distribution over the score, where the backend was asked for it.
    distribution: ScoreDistribution | None = None


@runtime_checkable
class GrmBackend(Protocol):
    """A GRM runtime. ``generate`` answers a batch in one call (one forward batch where possible).

    A failure of one query is an ``Answer`` with ``error`` set, never an exception; an exception
    means the whole batch failed (e.g. the backend was stopped) and is a ``BackendError``.
    """

    #: Identifies the model in results (checkpoint id or path).
    model_id: str

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer each query; ``len(result) == len(queries)``, same order."""
        ...

    def request_stop(self) -> None:
        """Ask a running ``generate`` to stop between decode steps and refuse later calls
        (sticky: for shutdown)."""
        ...

    def cancel(self) -> None:
        """Interrupt the ``generate`` in flight, if any (it raises ``BackendStoppedError``);
        later calls run normally. The node cancels the step in flight when it is deactivated."""
        ...

    def close(self) -> None:
        """Release the model and its memory."""
        ...


def generate_checked(backend: GrmBackend, queries: Sequence[Query]) -> list[Answer]:
    """``backend.generate(queries)``, with a ``BackendError`` when the answer count is wrong.

    Every caller pairs answers with queries by position, so a short list must never be zipped.
    """
    answers = backend.generate(queries)
    if len(answers) != len(queries):
        raise BackendError(f'backend returned {len(answers)} answers for {len(queries)} queries')
    return answers
