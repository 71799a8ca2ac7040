"""Approximate-time synchronizer for N image streams, keyed on header stamps.

ROS 2's ``message_filters`` is not installable from the package registries, so the node uses this
small pure-Python replacement. It only sees ``(stream, stamp_ns, item)`` triples, which keeps it
testable without ROS and usable for bag replay.

Algorithm (front-anchored, earliest-first, minimal spread):

* Stream 0 is the FRONT camera. Every emitted set contains exactly one front message, and the
  set's ``stamp_ns`` is that front stamp (the front image is what REF START/END and the progress
  plots are keyed on).
* Queued front messages are handled strictly in stamp order. For the oldest one, ``f``, the
  candidate set is the choice of one queued message per other stream, each in
  ``[f - slop, f + slop]``, that has the smallest spread ``max - min``; ties go to the earlier
  set. It is found exactly by trying every candidate stamp ``L <= f`` as the set's lower end and
  taking, per stream, the first message at or after ``L``.
* The choice for ``f`` is final once no future message can change it: every other stream has
  delivered a stamp ``>= f + slop`` (streams are in order, so nothing in the window can still
  come), or the best set already has spread 0. Until then the synchronizer waits. This wait (at
  most ``slop`` plus one frame period) is what makes the output independent of how the streams'
  deliveries interleave: a late stream still completes the set it belongs to.
* A final choice with spread ``<= slop`` is emitted; every queued message with a stamp ``<=`` the
  chosen one is then dropped in each stream, so no message is used twice and no stream goes back
  in time. A final front without any feasible set is dropped.
* A message older than its stream's latest stamp (or equal to it) is counted as out-of-order and
  ignored. A message too old to pair with any remaining or future front
  (``stamp < oldest usable front - slop``) is dropped as stale on arrival. Queues hold at most
  ``queue_size`` messages per stream; the oldest is dropped on overflow.

Every pushed message is accounted for exactly once: used in an emitted set, ``dropped_stale``,
``dropped_overflow``, ``out_of_order``, or still queued (``pending``).

Sets are chosen greedily in front order: a front takes its best partners even if the next front
would have matched them more tightly. With equal-rate cameras this never matters; it keeps the
algorithm simple and the output monotonic.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

logger = logging.getLogger(__name__)

#: Index of the front camera stream; its stamp is the stamp of a set.
FRONT = 0


@dataclass(frozen=True)
class SyncedSet:
    """One message per stream, chosen so that ``max(stamps) - min(stamps) <= slop``.

    ``stamps`` and ``items`` are in stream order; ``stamp_ns`` is the front stream's stamp.
    """

    stamps: tuple[int, ...]
    items: tuple[Any, ...]
    stamp_ns: int
    spread_ns: int


_Entry = tuple[int, Any]


class ApproxTimeSynchronizer:
    """Groups messages of ``num_streams`` streams whose header stamps are within ``slop_ns``.

    Not thread-safe: the ROS node calls :meth:`push` from one callback group.
    """

    def __init__(self, num_streams: int, slop_ns: int, queue_size: int = 10) -> None:
        if not _is_int(num_streams) or num_streams < 1:
            raise ConfigError(f'num_streams must be an integer >= 1, got {num_streams!r}')
        if not _is_int(slop_ns) or slop_ns < 0:
            raise ConfigError(f'slop_ns must be an integer >= 0, got {slop_ns!r}')
        if not _is_int(queue_size) or queue_size < 1:
            raise ConfigError(f'queue_size must be an integer >= 1, got {queue_size!r}')
        self._n = num_streams
        self._slop = slop_ns
        self._queue_size = queue_size
        self._queues: list[deque[_Entry]] = [deque() for _ in range(num_streams)]
        self._latest: list[int | None] = [None] * num_streams
        self._dropped_stale = 0
        self._dropped_overflow = 0
        self._out_of_order = 0
        self._emitted = 0

    # -- counters ---------------------------------------------------------------------------

    @property
    def num_streams(self) -> int:
        return self._n

    @property
    def slop_ns(self) -> int:
        return self._slop

    @property
    def dropped_stale(self) -> int:
        """Messages discarded because no set could use them any more."""
        return self._dropped_stale

    @property
    def dropped_overflow(self) -> int:
        """Messages discarded because their stream's queue was full."""
        return self._dropped_overflow

    @property
    def out_of_order(self) -> int:
        """Messages ignored because their stamp was not newer than their stream's latest."""
        return self._out_of_order

    @property
    def emitted(self) -> int:
        """Sets emitted so far."""
        return self._emitted

    @property
    def pending(self) -> tuple[int, ...]:
        """Number of queued messages per stream."""
        return tuple(len(q) for q in self._queues)

    def stats(self) -> dict[str, int]:
        """The counters as a dict, for diagnostics and logs."""
        return {'emitted': self._emitted, 'dropped_stale': self._dropped_stale,
                'dropped_overflow': self._dropped_overflow, 'out_of_order': self._out_of_order,
                'pending': sum(self.pending)}

    # -- input ------------------------------------------------------------------------------

    def push(self, stream: int, stamp_ns: int, item: Any) -> list[SyncedSet]:
        """Add one message and return the sets that became final, oldest first."""
        if not _is_int(stream) or not 0 <= stream < self._n:
            raise ConfigError(f'stream must be an integer in [0, {self._n}), got {stream!r}')
        if not _is_int(stamp_ns):
            raise ConfigError(f'stamp_ns must be an integer, got {stamp_ns!r}')
        latest = self._latest[stream]
        if latest is not None and stamp_ns <= latest:
            self._out_of_order += 1
            logger.debug('stream %d: stamp %d not newer than %d, ignored', stream, stamp_ns,
                         latest)
            return []
        self._latest[stream] = stamp_ns
        anchor = self._min_anchor()
        if stream != FRONT and anchor is not None and stamp_ns < anchor - self._slop:
            self._dropped_stale += 1
        else:
            self._queues[stream].append((stamp_ns, item))
        out = self._drain(final=False)
        for s, q in enumerate(self._queues):
            while len(q) > self._queue_size:
                q.popleft()
                self._dropped_overflow += 1
                logger.debug('stream %d: queue full, oldest message dropped', s)
        return out

    def flush(self) -> list[SyncedSet]:
        """Emit what can still be matched as if no more messages would come, then clear queues.

        For the end of a bag or a stream: the last front would otherwise wait forever for later
        messages on the other streams. Stamps seen so far still bound future pushes.
        """
        out = self._drain(final=True)
        for q in self._queues:
            self._dropped_stale += len(q)
            q.clear()
        return out

    def reset(self) -> None:
        """Forget queued messages and stream positions (e.g. after a bag loops); keep counters.

        The forgotten messages are counted as ``dropped_stale``, so every pushed message stays
        accounted for.
        """
        for q in self._queues:
            self._dropped_stale += len(q)
            q.clear()
        self._latest = [None] * self._n

    def reset_stream(self, stream: int) -> None:
        """Forget one stream's queued messages and position (its clock jumped back).

        The other streams keep theirs: frames already taken on the new time line stay usable.
        """
        self._dropped_stale += len(self._queues[stream])
        self._queues[stream].clear()
        self._latest[stream] = None

    # -- internals --------------------------------------------------------------------------

    def _min_anchor(self) -> int | None:
        """The oldest front stamp any future set can have, or None before the first front."""
        front = self._queues[FRONT]
        if front:
            return front[0][0]
        latest = self._latest[FRONT]
        return None if latest is None else latest + 1

    def _settled(self, f: int) -> bool:
        """True when every other stream has delivered everything that could pair with ``f``."""
        return all(latest is not None and latest >= f + self._slop
                   for latest in self._latest[1:])

    def _drop_older(self, stream: int, stamp: int) -> None:
        q = self._queues[stream]
        while q and q[0][0] < stamp:
            q.popleft()
            self._dropped_stale += 1

    def _drain(self, final: bool) -> list[SyncedSet]:
        out: list[SyncedSet] = []
        front = self._queues[FRONT]
        while front:
            f, f_item = front[0]
            for s in range(1, self._n):
                self._drop_older(s, f - self._slop)
            best = self._best_set(f)
            settled = final or self._settled(f)
            if best is not None and (settled or best[1] == 0):
                out.append(self._emit(f, f_item, best[0]))
            elif settled:
                front.popleft()
                self._dropped_stale += 1
            else:
                break
        anchor = self._min_anchor()
        if anchor is not None:
            for s in range(1, self._n):
                self._drop_older(s, anchor - self._slop)
        return out

    def _best_set(self, f: int) -> tuple[tuple[_Entry, ...], int] | None:
        """The minimal-spread partners of front stamp ``f`` (earliest on ties), or None."""
        lo, hi = f - self._slop, f + self._slop
        cands = [[e for e in self._queues[s] if lo <= e[0] <= hi] for s in range(1, self._n)]
        if any(not c for c in cands):
            return None
        lows = sorted({f} | {e[0] for c in cands for e in c if e[0] <= f})
        best: tuple[tuple[_Entry, ...], int] | None = None
        for low in lows:
            picks: list[_Entry] = []
            for c in cands:
                pick = next((e for e in c if e[0] >= low), None)
                if pick is None:
                    break
                picks.append(pick)
            if len(picks) < len(cands):
                break  # a higher lower end cannot find partners either
            stamps = [f] + [p[0] for p in picks]
            spread = max(stamps) - min(stamps)
            if best is None or spread < best[1]:
                best = (tuple(picks), spread)
        if best is None or best[1] > self._slop:
            return None
        return best

    def _emit(self, f: int, f_item: Any, picks: tuple[_Entry, ...]) -> SyncedSet:
        self._queues[FRONT].popleft()
        for s, (stamp, _) in enumerate(picks, start=1):
            self._drop_older(s, stamp)
            self._queues[s].popleft()  # the chosen message itself: used, not dropped
        stamps = (f, *(p[0] for p in picks))
        self._emitted += 1
        return SyncedSet(stamps=stamps, items=(f_item, *(p[1] for p in picks)), stamp_ns=f,
                         spread_ns=max(stamps) - min(stamps))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
