"""Potential-based shaping, γ conversion, success and the terminal convention."""

from __future__ import annotations

import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.shaping import (
    ShapingConfig,
    TerminalPotential,
    is_success,
    sample_gamma,
    shape,
)


def test_shaping_reward_is_gamma_phi_next_minus_phi() -> None:
    r = shape(0.2, 0.5, 0.99)
    assert r.reward == pytest.approx(0.99 * 0.5 - 0.2)
    assert (r.r_gold, r.success, r.terminal) == (0.0, False, False)


def test_shaping_success_adds_r_gold_and_terminal_uses_zero_potential() -> None:
    assert shape(0.9, 0.96, 0.99).reward == pytest.approx(1 + 0.99 * 0.96 - 0.9)
    term = shape(0.9, 0.96, 0.99, terminal=True)
    assert term.reward == pytest.approx(1 - 0.9) and term.terminal
    keep = shape(0.9, 0.96, 0.99, terminal=True, terminal_potential=TerminalPotential.KEEP)
    assert keep.reward == pytest.approx(1 + 0.99 * 0.96 - 0.9)


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
            last = t == len(phis) - 2
            r = shape(phis[t], phis[t + 1], gamma, terminal=last)
            total += gamma ** t * (r.reward - r.r_gold)
        assert total == pytest.approx(-phis[0])


@pytest.mark.parametrize('kwargs', [{'gamma': 0.0}, {'gamma': 1.5}, {'control_period_s': 0.0},
                                    {'delta': 1.0}, {'terminal_potential': 'sometimes'}])
def test_shaping_config_is_validated(kwargs: dict) -> None:
    with pytest.raises((ConfigError, ValueError)):
        ShapingConfig(**kwargs)
