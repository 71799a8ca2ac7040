"""Per-frame transitions from scored samples (core/frame_rewards.py) under the terminal rule."""

from __future__ import annotations

import numpy as np
import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.frame_rewards import ScoredFrame, frame_transitions, per_frame_gamma
from robo_dopamine_ros.core.shaping import Phase, TerminalPotential, shape


def _episode(progress: list[float], frames: list[int], gamma: float = 0.9,
             valid: list[bool] | None = None) -> list[ScoredFrame]:
    """Scored samples as the engine would give them: phases by the one terminal rule."""
    out, done = [ScoredFrame(frames[0], progress[0], True)], False
    for k in range(1, len(frames)):
        r = shape(progress[k - 1], progress[k], gamma, succeeded_before=done)
        done = done or r.success
        g = per_frame_gamma(gamma, frames[k] - frames[k - 1], 1.0)
        out.append(ScoredFrame(frames[k], progress[k], True if valid is None else valid[k],
                               g, r.phase))
    return out


def _span_return(t: np.ndarray, start: int, end: int, g: float) -> float:
    return float(sum(g ** j * t[start + j] for j in range(end - start)))


def test_progress_is_interpolated_and_each_span_returns_the_engine_reward() -> None:
    progress, frames = [0.0, 0.3, 0.2, 0.5], [0, 5, 10, 12]
    out = frame_transitions(13, _episode(progress, frames))
    assert out.progress[:6] == pytest.approx([0.0, 0.06, 0.12, 0.18, 0.24, 0.3])
    assert out.progress[11] == pytest.approx(0.35)
    for k in range(1, len(frames)):
        a, b = frames[k - 1], frames[k]
        engine = shape(progress[k - 1], progress[k], 0.9).reward
        assert _span_return(out.reward, a, b, 0.9 ** (1 / (b - a))) == pytest.approx(engine)
    assert out.reward[-1] == 0.0
    assert out.done.tolist() == [False] * 12 + [True]
    assert not out.success.any() and out.valid.all()


def test_a_success_pays_r_gold_once_ends_the_episode_and_nothing_after() -> None:
    # Success at frame 8 (0.97), later samples still scored: 0.99, a dip, back up.
    progress, frames = [0.0, 0.5, 0.97, 0.99, 0.6, 0.98], [0, 4, 8, 12, 16, 19]
    samples = _episode(progress, frames)
    assert [s.phase for s in samples[1:]] == [Phase.RUNNING, Phase.TERMINAL] + \
        [Phase.AFTER_SUCCESS] * 3
    out = frame_transitions(20, samples)
    assert out.reward[7] == pytest.approx(1.0 - out.progress[7])    # r_gold + γ·0 - Φ̂(7)
    assert out.reward[8:].tolist() == [0.0] * 12
    assert np.flatnonzero(out.done).tolist() == [7, 19]
    assert out.success.tolist() == [False] * 7 + [True] * 13
    # The episode's return: r_gold minus the start potential plus discounting losses; the
    # terminal-potential-free sum is what the issue measured as 1.97 before the rule.
    assert out.reward.sum() == pytest.approx(1.0, abs=0.1)
    keep = frame_transitions(20, samples, TerminalPotential.KEEP)
    g = 0.9 ** 0.25
    assert keep.reward[7] == pytest.approx(1.0 + g * 0.97 - keep.progress[7])
    assert keep.reward[8] == pytest.approx(g * keep.progress[9] - keep.progress[8])


def test_held_samples_mark_their_span_invalid() -> None:
    out = frame_transitions(9, _episode([0.0, 0.4, 0.4, 0.6], [0, 3, 6, 8],
                                        valid=[True, True, False, True]))
    assert out.valid.tolist() == [True] * 3 + [False] * 3 + [True] * 3
    assert out.progress[3:7].tolist() == pytest.approx([0.4] * 4)


@pytest.mark.parametrize('frames', [[1, 4], [0, 3], [0, 2, 2, 4], []])
def test_samples_must_cover_the_episode_in_order(frames: list[int]) -> None:
    with pytest.raises(ConfigError, match='scored frames must increase'):
        frame_transitions(5, [ScoredFrame(f, 0.0, True) for f in frames])


def test_a_one_frame_episode_is_one_done_row() -> None:
    out = frame_transitions(1, [ScoredFrame(0, 0.0, True)])
    assert (out.reward.tolist(), out.done.tolist(), out.success.tolist()) == ([0.0], [True],
                                                                              [False])
