"""Which frames get a GRM reading: online by header time, offline by frame index.

Three rules, one per use:

* :class:`HeaderTimeSampler` (ROS node, bag replay): one sample per ``interval_s`` of HEADER
  time, so the result does not depend on the replay rate or on callback timing.
* :func:`frame_interval_indices` (offline video, upstream ``run_pipeline``, docs/upstream.md §4.1
  item 4).
* :func:`evenly_spaced_indices` (benchmark protocol, docs/upstream.md §7.2).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .errors import ConfigError, coerce_enum

_NS_PER_S = 1_000_000_000


class HeaderTimeSampler:
    """Accepts one stamp per interval on a grid anchored at the first accepted stamp.

    The first stamp is accepted and becomes the anchor ``a``. The next sample is due at
    ``a + k * interval`` for the smallest ``k`` that lies past the last accepted stamp (plus the
    tolerance); a stamp is accepted when ``stamp >= due - tolerance``. Because the due times stay
    on the anchored grid instead of restarting at each accepted stamp, jitter and dropped frames
    do not accumulate into drift, and a 30 fps camera with ``interval_s=1.0`` yields frames 0, 30,
    60, ... whatever the replay speed. Integer nanoseconds keep the grid exact.

    The tolerance absorbs stamp jitter: a frame stamped slightly before its due time is still
    taken instead of the next one. With jitter of ±j on every stamp (the anchor included), the
    tolerance must be at least ``2 j`` to always pick the same frames. The default, 10 ms (a third
    of a 30 fps frame period), absorbs ±5 ms of jitter.

    A stamp that is not newer than the last stamp seen is rejected; :attr:`last_stamp_ns` lets
    the caller tell that case apart from "not due yet" and report it.
    """

    def __init__(self, interval_s: float, tolerance_s: float = 0.01) -> None:
        if not _is_number(interval_s) or not math.isfinite(interval_s) or interval_s <= 0:
            raise ConfigError(f'interval_s must be a finite number > 0, got {interval_s!r}')
        if (not _is_number(tolerance_s) or not math.isfinite(tolerance_s) or tolerance_s < 0
                or tolerance_s >= interval_s):
            raise ConfigError(f'tolerance_s must be in [0, interval_s={interval_s!r}), '
                              f'got {tolerance_s!r}')
        self._interval_ns = round(interval_s * _NS_PER_S)
        self._tolerance_ns = round(tolerance_s * _NS_PER_S)
        if self._interval_ns < 1:
            raise ConfigError(f'interval_s is below one nanosecond: {interval_s!r}')
        self._anchor_ns: int | None = None
        self._next_due_ns: int | None = None
        self._last_ns: int | None = None

    @property
    def interval_ns(self) -> int:
        return self._interval_ns

    @property
    def last_stamp_ns(self) -> int | None:
        """The last stamp passed to :meth:`accept` that was newer than the one before it."""
        return self._last_ns

    @property
    def next_due_ns(self) -> int | None:
        """When the next sample is due (None before the first accepted stamp)."""
        return self._next_due_ns

    def accept(self, stamp_ns: int) -> bool:
        """Return True if this stamp is a sample; False if not due yet or not increasing."""
        if not isinstance(stamp_ns, int) or isinstance(stamp_ns, bool):
            raise ConfigError(f'stamp_ns must be an integer, got {stamp_ns!r}')
        if self._last_ns is not None and stamp_ns <= self._last_ns:
            return False
        self._last_ns = stamp_ns
        if self._anchor_ns is None or self._next_due_ns is None:
            self._anchor_ns = stamp_ns
            self._next_due_ns = stamp_ns + self._interval_ns
            return True
        if stamp_ns < self._next_due_ns - self._tolerance_ns:
            return False
        k = (stamp_ns - self._anchor_ns + self._tolerance_ns) // self._interval_ns + 1
        self._next_due_ns = self._anchor_ns + k * self._interval_ns
        return True

    def reset(self) -> None:
        """Start a new grid at the next stamp (new episode, or a bag that jumped back)."""
        self._anchor_ns = None
        self._next_due_ns = None
        self._last_ns = None


def frame_interval_indices(num_frames: int, interval: int) -> list[int]:
    """Upstream ``run_pipeline`` indices: ``range(0, N, I)`` plus ``N - 1`` if not present.

    The last frame is always read so that the curve ends at the episode's end, even when the last
    step is shorter than the interval.
    """
    _check_int('num_frames', num_frames, 1)
    _check_int('interval', interval, 1)
    indices = list(range(0, num_frames, interval))
    if indices[-1] != num_frames - 1:
        indices.append(num_frames - 1)
    return indices


def evenly_spaced_indices(num_frames: int, interval: int = 30, min_count: int = 2) -> list[int]:
    """Benchmark indices (docs/upstream.md §7.2): ``m`` evenly spaced frames with both ends
    included.

    ``m = max(min_count, n // interval)`` capped at ``n``; index ``i`` is
    ``round(i * (n - 1) / (m - 1))`` with Python's ``round`` (ties to even, as upstream), and the
    first and last are forced to 0 and ``n - 1``. ``min_count=2`` mirrors the API script's
    ``max(2, n // interval)``; the GRM script has no such floor, so an episode with fewer than
    ``2 * interval`` frames yields fewer than two indices there, hence no pair to score (its VOC
    fails and is counted as 0). A curve needs two points, so ``min_count < 2`` is rejected.
    Capping at ``n`` avoids the duplicate indices upstream would produce for ``m > n``.
    """
    _check_int('num_frames', num_frames, 1)
    _check_int('interval', interval, 1)
    _check_int('min_count', min_count, 2)
    if num_frames == 1:
        return [0]
    m = min(num_frames, max(min_count, num_frames // interval))
    indices = [round(i * (num_frames - 1) / (m - 1)) for i in range(m)]
    indices[0] = 0
    indices[-1] = num_frames - 1
    return indices


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f'{name} must be an integer >= {minimum}, got {value!r}')


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class SamplerKind(str, enum.Enum):
    """The three sampling rules, by use."""

    HEADER_TIME = 'header_time'          # ROS node and bag replay
    FRAME_INTERVAL = 'frame_interval'    # offline videos (upstream run_pipeline)
    EVENLY_SPACED = 'evenly_spaced'      # benchmark (docs/upstream.md §7.2)


@dataclass(frozen=True)
class SamplingConfig:
    """Which rule picks the scored samples; the engine owns it so every adapter agrees.

    ``interval_s``/``tolerance_s`` apply to ``HEADER_TIME``; ``frame_interval`` to the two
    index rules (frames between samples for ``FRAME_INTERVAL``, the ``n // interval`` divisor for
    ``EVENLY_SPACED``).
    """

    kind: SamplerKind = SamplerKind.HEADER_TIME
    interval_s: float = 1.0
    tolerance_s: float = 0.01
    frame_interval: int = 30

    def __post_init__(self) -> None:
        coerce_enum(self, 'kind', SamplerKind)
        HeaderTimeSampler(self.interval_s, self.tolerance_s)      # validates both
        _check_int('frame_interval', self.frame_interval, 1)

    def header_sampler(self) -> HeaderTimeSampler:
        return HeaderTimeSampler(self.interval_s, self.tolerance_s)

    def indices(self, num_frames: int) -> list[int]:
        """The frame indices to score, for the index rules."""
        if self.kind is SamplerKind.FRAME_INTERVAL:
            return frame_interval_indices(num_frames, self.frame_interval)
        if self.kind is SamplerKind.EVENLY_SPACED:
            return evenly_spaced_indices(num_frames, self.frame_interval)
        raise ConfigError('the header_time sampler picks samples by stamp, not by index')
