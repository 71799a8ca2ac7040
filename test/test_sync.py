"""Approximate-time synchronizer: which sets form, when, and how drops are counted."""

from __future__ import annotations

import random

import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.sync import ApproxTimeSynchronizer, SyncedSet

MS = 1_000_000

#: Three 30 fps cameras with a few ms of jitter (stamps in ms).
FRONT = [1000, 1033, 1066]
LEFT = [1003, 1031, 1070]
RIGHT = [998, 1036, 1064]


def ms_stamps(sets: list[SyncedSet]) -> list[tuple[int, ...]]:
    return [tuple(s // MS for s in x.stamps) for x in sets]


def push_all(sync: ApproxTimeSynchronizer, order: list[tuple[int, int]]) -> list[SyncedSet]:
    out: list[SyncedSet] = []
    for stream, stamp_ms in order:
        out += sync.push(stream, stamp_ms * MS, (stream, stamp_ms))
    return out


def time_ordered() -> list[tuple[int, int]]:
    msgs = [(s, t) for s, stamps in enumerate((FRONT, LEFT, RIGHT)) for t in stamps]
    return sorted(msgs, key=lambda m: (m[1], m[0]))


def test_sync_three_jittered_streams_form_expected_sets() -> None:
    sync = ApproxTimeSynchronizer(3, slop_ns=10 * MS)
    out = push_all(sync, time_ordered())
    # The last front waits until every stream is past 1066 + 10 ms; flush releases it.
    assert ms_stamps(out) == [(1000, 1003, 998), (1033, 1031, 1036)]
    assert [x.spread_ns for x in out] == [5 * MS, 5 * MS]
    assert [x.stamp_ns for x in out] == [1000 * MS, 1033 * MS]
    assert out[0].items == ((0, 1000), (1, 1003), (2, 998))
    assert ms_stamps(sync.flush()) == [(1066, 1070, 1064)]
    assert sync.emitted == 3
    assert sync.stats() == {'emitted': 3, 'dropped_stale': 0, 'dropped_overflow': 0,
                            'out_of_order': 0, 'pending': 0}


def test_sync_late_stream_still_forms_the_sets() -> None:
    sync = ApproxTimeSynchronizer(3, slop_ns=10 * MS)
    early = push_all(sync, [(0, t) for t in FRONT] + [(2, t) for t in RIGHT])
    assert early == []
    late = push_all(sync, [(1, t) for t in LEFT])
    assert ms_stamps(late) == [(1000, 1003, 998), (1033, 1031, 1036)]
    assert ms_stamps(sync.flush()) == [(1066, 1070, 1064)]


def test_sync_output_does_not_depend_on_arrival_interleaving() -> None:
    rng = random.Random(7)
    streams = [[1000 + 33 * i + rng.randint(-4, 4) for i in range(30)] for _ in range(3)]
    reference = None
    for _ in range(20):
        pending = [list(s) for s in streams]
        order = []
        while any(pending):
            s = rng.choice([i for i, p in enumerate(pending) if p])
            order.append((s, pending[s].pop(0)))
        sync = ApproxTimeSynchronizer(3, slop_ns=10 * MS, queue_size=100)
        result = ms_stamps(push_all(sync, order) + sync.flush())
        if reference is None:
            reference = result
        assert result == reference
    assert reference is not None and len(reference) == 30


def test_sync_slop_exceeded_gives_no_set_and_counts_stale_front() -> None:
    sync = ApproxTimeSynchronizer(2, slop_ns=5 * MS)
    assert sync.push(0, 1000 * MS, 'f') == []
    assert sync.push(1, 1020 * MS, 'a') == []
    assert sync.dropped_stale == 1
    assert sync.emitted == 0
    assert sync.pending == (0, 1)
    assert sync.push(0, 1021 * MS, 'g') == []  # spread 1 ms: waits for stream 1 to pass 1026
    assert ms_stamps(sync.push(1, 1040 * MS, 'b')) == [(1021, 1020)]


def test_sync_message_too_old_for_any_front_is_stale_on_arrival() -> None:
    sync = ApproxTimeSynchronizer(3, slop_ns=10 * MS)
    push_all(sync, [(0, 1000), (1, 1000)])
    assert ms_stamps(sync.push(2, 1000 * MS, None)) == [(1000, 1000, 1000)]  # spread 0: at once
    sync.push(0, 1100 * MS, None)
    sync.push(1, 1050 * MS, None)
    assert sync.dropped_stale == 1
    assert sync.pending == (1, 0, 0)


def test_sync_out_of_order_and_duplicate_stamps_are_counted_and_ignored() -> None:
    sync = ApproxTimeSynchronizer(2, slop_ns=10 * MS)
    sync.push(1, 1000 * MS, None)
    assert sync.push(1, 990 * MS, None) == []
    assert sync.push(1, 1000 * MS, None) == []
    assert sync.out_of_order == 2
    assert sync.pending == (0, 1)


def test_sync_full_queue_drops_oldest_and_counts_overflow() -> None:
    sync = ApproxTimeSynchronizer(2, slop_ns=5 * MS, queue_size=3)
    push_all(sync, [(0, 1000), (0, 1033), (0, 1066), (0, 1100)])
    assert sync.dropped_overflow == 1
    assert sync.pending == (3, 0)
    out = push_all(sync, [(1, 1034), (1, 1067), (1, 1101), (1, 1200)])
    assert ms_stamps(out) == [(1033, 1034), (1066, 1067), (1100, 1101)]


def test_sync_picks_minimal_spread_partner_and_drops_skipped_message() -> None:
    sync = ApproxTimeSynchronizer(2, slop_ns=10 * MS)
    out = push_all(sync, [(0, 1000), (1, 992), (1, 1001), (1, 1015)])
    assert ms_stamps(out) == [(1000, 1001)]
    assert sync.dropped_stale == 1  # 992: older than the chosen 1001, never usable again
    assert sync.pending == (0, 1)


def test_sync_finds_feasible_set_that_nearest_neighbour_would_miss() -> None:
    # Nearest-to-front picks 106 for stream 1 (spread 15 > slop); 92 + 91 fits in 9 ms.
    sync = ApproxTimeSynchronizer(3, slop_ns=10 * MS)
    out = push_all(sync, [(0, 100), (1, 92), (1, 106), (2, 91), (1, 120), (2, 120)])
    assert ms_stamps(out) == [(100, 92, 91)]
    assert out[0].spread_ns == 9 * MS


def test_sync_single_stream_emits_every_message() -> None:
    sync = ApproxTimeSynchronizer(1, slop_ns=0)
    out = push_all(sync, [(0, 5), (0, 6), (0, 9)])
    assert ms_stamps(out) == [(5,), (6,), (9,)]
    assert [x.spread_ns for x in out] == [0, 0, 0]
    assert out[2].items == ((0, 9),)


def test_sync_every_pushed_message_is_accounted_for() -> None:
    rng = random.Random(3)
    sync = ApproxTimeSynchronizer(3, slop_ns=8 * MS, queue_size=4)
    used = pushed = 0
    for i in range(200):
        stream = rng.randrange(3)
        stamp = 1000 + 11 * i + rng.randint(-30, 30)
        pushed += 1
        used += 3 * len(sync.push(stream, stamp * MS, None))
    accounted = (used + sync.dropped_stale + sync.dropped_overflow + sync.out_of_order
                 + sum(sync.pending))
    assert accounted == pushed


def test_sync_reset_accepts_earlier_stamps_again() -> None:
    sync = ApproxTimeSynchronizer(2, slop_ns=0)
    push_all(sync, [(0, 500), (1, 500)])
    sync.reset()
    assert ms_stamps(push_all(sync, [(0, 100), (1, 100)])) == [(100, 100)]
    assert sync.out_of_order == 0
    assert sync.emitted == 2


@pytest.mark.parametrize(('args', 'text'), [((0, 1), '0'), ((2, -1), '-1'), ((2, 1, 0), '0')])
def test_sync_invalid_settings_raise_config_error(args: tuple[int, ...], text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        ApproxTimeSynchronizer(*args)


def test_sync_unknown_stream_raises_config_error() -> None:
    sync = ApproxTimeSynchronizer(3, slop_ns=0)
    with pytest.raises(ConfigError, match='got 3'):
        sync.push(3, 1, None)
