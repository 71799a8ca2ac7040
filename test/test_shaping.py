"""Potential-based shaping, γ conversion, success and the terminal convention."""

from __future__ import annotations

from itertools import pairwise

import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.shaping import (
    Phase,
    ShapingConfig,
    TerminalPotential,
    is_success,
    sample_gamma,
    shape,
    transition_phase,
)


def test_shaping_reward_is_gamma_phi_next_minus_phi() -> None:
    r = shape(0.2, 0.5, 0.99)
    assert r.reward == pytest.approx(0.99 * 0.5 - 0.2)
    assert (r.r_gold, r.success, r.terminal) == (0.0, False, False)


def test_shaping_first_success_is_terminal_with_r_gold_and_zero_potential() -> None:
    term = shape(0.9, 0.96, 0.99)
    assert term.reward == pytest.approx(1 - 0.9) and term.terminal and term.r_gold == 1.0
    keep = shape(0.9, 0.96, 0.99, terminal_potential=TerminalPotential.KEEP)
    assert keep.reward == pytest.approx(1 + 0.99 * 0.96 - 0.9) and keep.terminal


def test_the_terminal_rule_pays_r_gold_once_then_nothing() -> None:
    assert [transition_phase(before, now) for before, now in
            ((False, False), (False, True), (True, True), (True, False))] == [
        Phase.RUNNING, Phase.TERMINAL, Phase.AFTER_SUCCESS, Phase.AFTER_SUCCESS]
    # An episode that reaches 0.97, stays, dips and comes back: one r_gold, then reward 0.
    phis, done, rewards = [0.5, 0.97, 0.99, 0.6, 0.98], False, []
    for before, after in pairwise(phis):
        r = shape(before, after, 0.9, succeeded_before=done)
        done = done or r.success
        rewards.append(r)
    assert [r.phase for r in rewards] == [Phase.TERMINAL] + [Phase.AFTER_SUCCESS] * 3
    assert [r.r_gold for r in rewards] == [1.0, 0.0, 0.0, 0.0]
    assert [r.reward for r in rewards] == pytest.approx([1 - 0.5, 0.0, 0.0, 0.0])
    assert rewards[1].success and not rewards[1].terminal and not rewards[2].success
    # KEEP bootstraps through the success state: later transitions are plain γΦ' - Φ.
    keep = shape(0.97, 0.99, 0.9, succeeded_before=True,
                 terminal_potential=TerminalPotential.KEEP)
    assert (keep.reward, keep.r_gold) == (pytest.approx(0.9 * 0.99 - 0.97), 0.0)


def test_shaping_success_threshold_is_one_minus_delta() -> None:
    assert is_success(0.95) and not is_success(0.9499)
    assert is_success(0.9, delta=0.1)


def test_shaping_gamma_converts_from_control_step_to_sample_period() -> None:
    assert sample_gamma(0.99, 0.1, 1.0) == pytest.approx(0.99 ** 10)
    assert sample_gamma(0.98, 0.5, 0.5) == pytest.approx(0.98)
    assert ShapingConfig(gamma=0.99).sample_gamma(3.0) == 0.99
    assert ShapingConfig(gamma=0.99, control_period_s=0.05).sample_gamma(1.0) == \
        pytest.approx(0.99 ** 20)
    with pytest.raises(ConfigError):
        sample_gamma(0.99, 0.1, 0.0)


def test_shaping_discounted_sum_telescopes_to_minus_phi0() -> None:
    # Policy invariance: with a zero terminal potential, the discounted shaping terms of any
    # trajectory sum to -Φ(s0) (+ the discounted gold reward), whatever happens in between.
    gamma = 0.9
    for phis in ([0.1, 0.4, 0.3, 0.97], [0.1, 0.2, 0.5, 0.8, 0.99]):
        total = 0.0
        for t in range(len(phis) - 1):
            r = shape(phis[t], phis[t + 1], gamma)       # the last one reaches success
            total += gamma ** t * (r.reward - r.r_gold)
        assert total == pytest.approx(-phis[0])


@pytest.mark.parametrize('kwargs', [{'gamma': 0.0}, {'gamma': 1.5}, {'control_period_s': 0.0},
                                    {'delta': 1.0}, {'terminal_potential': 'sometimes'}])
def test_shaping_config_is_validated(kwargs: dict) -> None:
    with pytest.raises((ConfigError, ValueError)):
        ShapingConfig(**kwargs)
