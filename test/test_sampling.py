"""Samplers: header-time grid, upstream frame-interval indices, benchmark evenly spaced indices."""

from __future__ import annotations

import random
import re

import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.sampling import (
    HeaderTimeSampler,
    evenly_spaced_indices,
    frame_interval_indices,
)

MS = 1_000_000
BASE = 1_700_000_000 * 1_000_000_000  # a realistic epoch stamp in ns


def stamp_30fps(i: int) -> int:
    return BASE + round(i * 1_000_000_000 / 30)


def accepted(sampler: HeaderTimeSampler, stamps: dict[int, int]) -> list[int]:
    return [i for i, t in stamps.items() if sampler.accept(t)]


def test_header_time_sampler_30fps_interval_1s_picks_frames_0_30_60() -> None:
    stamps = {i: stamp_30fps(i) for i in range(90)}
    assert accepted(HeaderTimeSampler(1.0), stamps) == [0, 30, 60]


def test_header_time_sampler_jitter_of_2ms_picks_the_same_frames() -> None:
    rng = random.Random(11)
    stamps = {i: stamp_30fps(i) + rng.randint(-2 * MS, 2 * MS) for i in range(90)}
    assert accepted(HeaderTimeSampler(1.0, tolerance_s=0.005), stamps) == [0, 30, 60]


def test_header_time_sampler_worst_case_jitter_needs_twice_the_jitter_as_tolerance() -> None:
    # Anchor 2 ms late and frame 30 2 ms early: frame 30 is 4 ms before its due time.
    stamps = {i: stamp_30fps(i) for i in range(90)}
    stamps[0] += 2 * MS
    stamps[30] -= 2 * MS
    assert accepted(HeaderTimeSampler(1.0, tolerance_s=0.004), dict(stamps)) == [0, 30, 60]
    # 1 ms: frames 30 and 60 are 4 and 2 ms before the grid anchored at +2 ms.
    assert accepted(HeaderTimeSampler(1.0, tolerance_s=0.001), dict(stamps)) == [0, 31, 61]
    assert accepted(HeaderTimeSampler(1.0), dict(stamps)) == [0, 30, 60]   # default 10 ms


def test_header_time_sampler_dropped_frames_do_not_shift_the_grid() -> None:
    stamps = {i: stamp_30fps(i) for i in range(90) if i not in (30, 31, 32)}
    assert accepted(HeaderTimeSampler(1.0), stamps) == [0, 33, 60]


def test_header_time_sampler_long_gap_skips_to_next_grid_point() -> None:
    sampler = HeaderTimeSampler(1.0, tolerance_s=0.001)
    assert sampler.accept(0)
    assert sampler.accept(2_500 * MS)
    assert sampler.next_due_ns == 3_000 * MS
    assert not sampler.accept(2_998 * MS)
    assert sampler.accept(2_999 * MS)  # exactly due - tolerance


def test_header_time_sampler_accepts_first_sample() -> None:
    sampler = HeaderTimeSampler(0.5)
    assert sampler.next_due_ns is None
    assert sampler.accept(123)
    assert sampler.next_due_ns == 123 + 500 * MS


def test_header_time_sampler_rejects_non_increasing_stamps() -> None:
    sampler = HeaderTimeSampler(1.0)
    assert sampler.accept(100 * MS)
    assert not sampler.accept(100 * MS)
    assert not sampler.accept(50 * MS)
    assert sampler.last_stamp_ns == 100 * MS
    assert sampler.accept(1_100 * MS)


def test_header_time_sampler_reset_starts_a_new_grid() -> None:
    sampler = HeaderTimeSampler(1.0)
    assert sampler.accept(5_000 * MS)
    sampler.reset()
    assert sampler.last_stamp_ns is None
    assert sampler.accept(10 * MS)
    assert sampler.next_due_ns == 1_010 * MS


@pytest.mark.parametrize(('interval', 'tolerance', 'text'), [
    (0.0, 0.001, '0.0'), (-1.0, 0.001, '-1.0'), (float('nan'), 0.001, 'nan'),
    (1.0, -0.1, '-0.1'), (1.0, 1.0, '1.0'),
])
def test_header_time_sampler_invalid_settings_raise_config_error(
        interval: float, tolerance: float, text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        HeaderTimeSampler(interval, tolerance_s=tolerance)


@pytest.mark.parametrize(('n', 'interval', 'expected'), [
    (10, 3, [0, 3, 6, 9]),
    (11, 3, [0, 3, 6, 9, 10]),
    (1, 5, [0]),
    (5, 10, [0, 4]),
    (4, 1, [0, 1, 2, 3]),
])
def test_frame_interval_indices_match_upstream_run_pipeline(
        n: int, interval: int, expected: list[int]) -> None:
    assert frame_interval_indices(n, interval) == expected


@pytest.mark.parametrize(('n', 'interval'), [(0, 3), (5, 0), (5, 1.5)])
def test_frame_interval_indices_invalid_input_raises_config_error(n: int, interval: int) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(n if n < 1 else interval))):
        frame_interval_indices(n, interval)


def test_evenly_spaced_indices_real_episode_gives_42_indices() -> None:
    indices = evenly_spaced_indices(1277)  # m = 1277 // 30 = 42, step 1276 / 41 = 31.12
    assert len(indices) == 42
    assert indices[:4] == [0, 31, 62, 93]
    assert indices[-3:] == [1214, 1245, 1276]


@pytest.mark.parametrize(('n', 'kwargs', 'expected'), [
    (100, {}, [0, 50, 99]),               # m = 3: 49.5 rounds to even 50
    (98, {}, [0, 48, 97]),                # m = 3: 48.5 rounds to even 48
    (6, {'min_count': 3}, [0, 2, 5]),     # 2.5 -> 2
    (8, {'min_count': 3}, [0, 4, 7]),     # 3.5 -> 4
    (8, {'interval': 2}, [0, 2, 5, 7]),   # m = 4: 2.33 -> 2, 4.67 -> 5
    (10, {}, [0, 9]),                     # n // 30 = 0 -> the floor of 2
    (3, {'min_count': 5}, [0, 1, 2]),     # capped at n
    (1, {}, [0]),
])
def test_evenly_spaced_indices_hand_computed(n: int, kwargs: dict[str, int],
                                             expected: list[int]) -> None:
    assert evenly_spaced_indices(n, **kwargs) == expected


@pytest.mark.parametrize(('n', 'kwargs', 'text'), [
    (0, {}, '0'), (-3, {}, '-3'), (10, {'interval': 0}, '0'), (10, {'min_count': 1}, '1'),
])
def test_evenly_spaced_indices_invalid_input_raises_config_error(
        n: int, kwargs: dict[str, int], text: str) -> None:
    with pytest.raises(ConfigError, match=f'got {text}'):
        evenly_spaced_indices(n, **kwargs)
