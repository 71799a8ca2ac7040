"""Camera frames in, due sample sets out: frame check, stamp rule, synchronizer, staleness.

The node calls :meth:`FrameInput.frame` from its camera callbacks with the serialized messages
(raw subscriptions); bag replay calls it with the bag's serialized messages in bag order. Both thus
drop a frame, count a stamp problem, start a new episode after a jump back in time and pair
frames into sets by exactly the same rules. Pixels are never touched here: :func:`decode_set`
turns a set the sampler wants into a :class:`Sample`, on the node's worker thread.

Stamp rule (``stamps.policy``): ``header`` uses each frame's header stamp; an unset (zero) stamp
or one not newer than the camera's last is dropped, a stamp further than ``stamps.max_age_s``
from the receive clock is counted as skewed (kept), and a jump back beyond the sync slop starts
a new episode (one jump per all cameras, or per ROS clock jump): frames and sets from before it
are forgotten, so no BEFORE from before the jump is paired with an AFTER after it. ``receive``
uses the receive time and only counts header problems.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.engine import Sample
from ..core.errors import ImageError
from ..core.sync import FRONT, ApproxTimeSynchronizer, SyncedSet
from .images import Frame, check, parse_frame, to_views
from .params import NodeConfig, StampPolicy, Transport


class StampProblem(str, enum.Enum):
    """What can be wrong with a frame's header stamp."""

    ZERO = 'zero_stamps'                    # an unset header (the frame is dropped)
    NON_MONOTONIC = 'non_monotonic_stamps'  # not newer than the camera's last (dropped)
    SKEWED = 'skewed_stamps'                # |header - receive| > stamps.max_age_s (reported)
    TIME_JUMP = 'time_jumps'                # header time went back beyond the sync slop
    NO_CLOCK = 'frames_before_clock'        # stamps.policy receive, the clock not yet started


class InputCounters(Protocol):
    """Where the input's counts go (the node's diagnostics, replay's summary)."""

    def frame(self, index: int, now: float) -> None: ...

    def bad_frame(self, index: int) -> None: ...

    def stamp_problem(self, index: int, problem: StampProblem) -> None: ...

    def stale_set(self) -> None: ...


class Counts:
    """:class:`InputCounters` as plain counts (replay's summary); not thread-safe."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(
            ['frames', 'bad_frames', 'stale_sets', *(p.value for p in StampProblem)], 0)

    def frame(self, index: int, now: float) -> None:
        self.counts['frames'] += 1

    def bad_frame(self, index: int) -> None:
        self.counts['bad_frames'] += 1

    def stamp_problem(self, index: int, problem: StampProblem) -> None:
        self.counts[problem.value] += 1

    def stale_set(self) -> None:
        self.counts['stale_sets'] += 1


@dataclass(frozen=True, slots=True)
class Received:
    """A camera frame, when it arrived (seconds, for staleness) and the adapter's ``tag``."""

    frame: Frame
    rx: float
    tag: Any = None


class FrameInput:
    """Per-camera checks and the synchronizer of one node (or one replay); thread-safe.

    Args:
        config: The node's parameters (cameras, sync, stamps, input budget, staleness).
        counters: Receives every count.
        on_time_jump: Called with the reason (and the input's lock held) when time jumped
            back: the adapter starts a new episode.
        warn: Logs a problem with one frame (the node throttles it).
        stale_after_s: A set holding a frame this much older than the newest is not scored
            (None: no staleness, e.g. replay, where frames are never late).
    """

    def __init__(self, config: NodeConfig, counters: InputCounters, *,
                 on_time_jump: Callable[[str], None], warn: Callable[[str], None],
                 stale_after_s: float | None) -> None:
        self.config = config
        self._counters = counters
        self._on_time_jump = on_time_jump
        self._warn = warn
        self._stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self.sync = ApproxTimeSynchronizer(len(config.cameras), config.sync_slop_ns,
                                           config.sync_queue_size)
        self._last_header: list[int | None] = [None] * len(config.cameras)
        #: Cameras whose header time has already jumped back since the last jump-triggered
        #: reset (None: no jump in progress). The other cameras' jumps are the same jump.
        self._jumped: set[int] | None = None
        self._latest_front: Frame | None = None
        self._compressed = [cam.transport is Transport.COMPRESSED for cam in config.cameras]

    @property
    def latest_front(self) -> Frame | None:
        """The last front frame that passed the checks (``~/set_goal`` CAPTURE_FRONT)."""
        return self._latest_front

    def frame(self, index: int, data: bytes | memoryview, *, rx: float, received_ns: int,
              now_ns: int, tag: Any = None) -> list[SyncedSet]:
        """Check, stamp and synchronize one frame; returns the sets it completed (fresh ones).

        Args:
            index: The camera's index in ``config.cameras`` (its sync stream).
            data: The serialized ``sensor_msgs`` message (of the camera's transport).
            rx: Receive time in seconds (monotonic on the node, bag time in replay).
            received_ns: Receive time in ns, the stamp under ``stamps.policy: receive`` (the
                node's clock at reception; 0 while that clock has not started, e.g. under
                ``use_sim_time`` before the first ``/clock``).
            now_ns: The clock header stamps are compared with (skew); 0 = not started, no
                skew is reported.
            tag: Kept with the frame in its set (replay: where it is in the bag).
        """
        self._counters.frame(index, rx)
        try:
            frame = parse_frame(data, self._compressed[index])
            check(frame, self.config.max_input_pixels)
        except ImageError as err:
            self.bad_frame(index, err)
            return []
        with self._lock:
            stamp = self._stamp(index, frame, received_ns, now_ns)
            if stamp is None:
                return []
            if index == FRONT:
                self._latest_front = frame
            synced = self.sync.push(index, stamp, Received(frame, rx, tag))
            if synced:
                self._jumped = None     # every camera is past any jump
        return self._fresh(synced, rx)

    def flush(self) -> list[SyncedSet]:
        """The sets still pending (end of a bag): nothing more will arrive."""
        with self._lock:
            return self.sync.flush()

    def clock_jumped(self, reason: str) -> None:
        """The ROS clock went back (``use_sim_time`` and a looping ``/clock``)."""
        with self._lock:
            if self._jumped is not None:    # the cameras' header jump already did it
                return
            self._jumped = set()
            self._time_jumped(reason)

    def forget(self) -> None:
        """Drop the last front frame (the node is cleaned up)."""
        self._latest_front = None

    def bad_frame(self, index: int, err: ImageError) -> None:
        """Count and log a frame that cannot be used (here, or when its set is decoded)."""
        self._counters.bad_frame(index)
        self._warn(f'{self.config.cameras[index].topic}: frame dropped: {err}')

    def _fresh(self, synced: list[SyncedSet], now: float) -> list[SyncedSet]:
        if self._stale_after_s is None:
            return synced
        fresh = []
        for s in synced:
            if any(now - item.rx > self._stale_after_s for item in s.items):
                self._counters.stale_set()      # a view from a stale camera is never scored
            else:
                fresh.append(s)
        return fresh

    def _stamp(self, index: int, frame: Frame, received_ns: int, now_ns: int) -> int | None:
        """The frame's stamp under ``stamps.policy``, or None to drop it; reports problems."""
        cfg = self.config
        header_ns = frame.stamp_ns
        last = self._last_header[index]
        problem = None
        if header_ns == 0:
            problem = StampProblem.ZERO
        elif (cfg.stamp_policy is StampPolicy.HEADER and last is not None
              and header_ns < last - cfg.sync_slop_ns):
            self._last_header[index] = header_ns
            self._header_jumped(index, last, header_ns)
        elif last is not None and header_ns <= last:
            problem = StampProblem.NON_MONOTONIC
        else:
            self._last_header[index] = header_ns
            if now_ns and abs(header_ns - now_ns) > cfg.max_age_ns:
                problem = StampProblem.SKEWED
        if problem is not None:
            self._counters.stamp_problem(index, problem)
            self._warn(f'{cfg.cameras[index].topic}: header stamp {header_ns} ns is '
                       f'{problem.name} (receive time {now_ns} ns, last stamp {last})')
        if cfg.stamp_policy is StampPolicy.RECEIVE:
            if not received_ns:     # no time to stamp it with yet: dropped, counted
                self._counters.stamp_problem(index, StampProblem.NO_CLOCK)
                self._warn(f'{cfg.cameras[index].topic}: frame dropped: stamps.policy receive '
                           'and the node clock has not started (no /clock yet)')
                return None
            return received_ns
        return None if problem in (StampProblem.ZERO, StampProblem.NON_MONOTONIC) else header_ns

    def _header_jumped(self, index: int, last_ns: int, header_ns: int) -> None:
        """A camera's header time went back: one jump per all cameras starts a new episode."""
        self._counters.stamp_problem(index, StampProblem.TIME_JUMP)
        if self._jumped is not None and index not in self._jumped:
            self._jumped.add(index)     # the jump another camera (or the clock) already made
            self.sync.reset_stream(index)
            return
        self._jumped = {index}
        self._time_jumped(f'header time of {self.config.cameras[index].topic} jumped back '
                          f'{(last_ns - header_ns) / 1e9:.3f} s (from {last_ns} to '
                          f'{header_ns} ns)')

    def _time_jumped(self, reason: str) -> None:
        self.sync.reset()
        self._on_time_jump(reason)


def decode_set(synced: SyncedSet, roles: Sequence[str], max_pixels: int,
               pool: Executor | None = None) -> Sample:
    """A synchronized set's frames as RGB views: the engine's :class:`Sample`.

    ``pool`` decodes the views concurrently (:func:`~.images.to_views`).

    Raises:
        ViewError: A frame cannot be decoded (its camera index is in the error).
    """
    views = to_views([item.frame for item in synced.items], roles, max_pixels, pool)
    return Sample(synced.stamp_ns, **views)

