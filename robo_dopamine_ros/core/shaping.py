"""Policy-invariant potential-based reward shaping (paper §3.2, Eq. 13-14).

``r = r_gold + γ·Φ(s') - Φ(s)`` with the fused progress as potential, ``r_gold = 1`` when
``Φ(s') >= 1 - δ`` (δ = 0.05). γ must be the learner's discount, so it is given per *control step*
together with the control period and converted to the period between two scored samples:
``γ_sample = γ_step ** (Δt_sample / Δt_step)``.

Terminal rule (the paper does not state one), :func:`transition_phase`, the one rule every
adapter and learner-side helper uses: the first transition whose ``Φ(s') >= 1 - δ`` is
*terminal* and the only one paid ``r_gold``; the episode ends there. By default
(``TerminalPotential.ZERO``) the potential of a terminal state is 0, the standard episodic PBRS
rule that keeps the optimal policy unchanged: ``r = r_gold - Φ(s)``. ``KEEP`` uses ``γ·Φ(s')``
there too, for learners that bootstrap through the success state. Transitions *after* the
terminal one (``AFTER_SUCCESS``: scoring goes on for monitoring) never get ``r_gold`` again:
under ``ZERO`` they lie in the absorbing state (potential 0 on both sides), reward 0; under
``KEEP`` they get ``γ·Φ(s') - Φ(s)``, so the discounted sum still telescopes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import ConfigError, coerce_enum

DEFAULT_DELTA = 0.05
DEFAULT_GAMMA = 0.99


class Phase(str, enum.Enum):
    """Where a transition lies relative to the episode's first success."""

    RUNNING = 'running'                 # no success yet
    TERMINAL = 'terminal'               # the first transition reaching success: r_gold, ends
    AFTER_SUCCESS = 'after_success'     # any later one: no r_gold, outside the episodic MDP


def transition_phase(succeeded_before: bool, success_now: bool) -> Phase:
    """The terminal rule: terminal once, at the first success; after it, after-success."""
    if succeeded_before:
        return Phase.AFTER_SUCCESS
    return Phase.TERMINAL if success_now else Phase.RUNNING


class TerminalPotential(str, enum.Enum):
    """The potential used for the state a terminal transition reaches."""

    ZERO = 'zero'
    KEEP = 'keep'


@dataclass(frozen=True)
class ShapingConfig:
    """Discount per control step, the control period, the success margin and the terminal rule.

    ``control_period_s=None`` means one control step per scored sample (γ used as given).
    """

    gamma: float = DEFAULT_GAMMA
    control_period_s: float | None = None
    delta: float = DEFAULT_DELTA
    terminal_potential: TerminalPotential = TerminalPotential.ZERO

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f'gamma must be in (0, 1], got {self.gamma!r}')
        if self.control_period_s is not None and self.control_period_s <= 0:
            raise ConfigError(f'control_period_s must be > 0, got {self.control_period_s!r}')
        if not 0.0 <= self.delta < 1.0:
            raise ConfigError(f'delta must be in [0, 1), got {self.delta!r}')
        coerce_enum(self, 'terminal_potential', TerminalPotential)

    def sample_gamma(self, sample_period_s: float) -> float:
        """γ for one scored transition spanning ``sample_period_s`` seconds."""
        if self.control_period_s is None:
            return self.gamma
        return sample_gamma(self.gamma, self.control_period_s, sample_period_s)


@dataclass(frozen=True)
class ShapedReward:
    """One transition's reward and the values it was computed from."""

    reward: float
    potential_before: float
    potential_after: float
    gamma: float
    r_gold: float
    success: bool    # Φ(s') >= 1 - δ at this transition
    phase: Phase

    @property
    def terminal(self) -> bool:
        """The first successful transition of the episode."""
        return self.phase is Phase.TERMINAL


def sample_gamma(gamma_step: float, control_period_s: float, sample_period_s: float) -> float:
    """Convert a per-control-step discount to a transition of ``sample_period_s`` seconds."""
    if control_period_s <= 0:
        raise ConfigError(f'control period must be > 0, got {control_period_s!r}')
    if sample_period_s <= 0:
        raise ConfigError(f'sample period must be > 0, got {sample_period_s!r}')
    return gamma_step ** (sample_period_s / control_period_s)


def is_success(progress: float, delta: float = DEFAULT_DELTA) -> bool:
    """The paper's automatic success: Φ >= 1 - δ."""
    return progress >= 1.0 - delta


def shape(potential_before: float, potential_after: float, gamma: float, *,
          delta: float = DEFAULT_DELTA, succeeded_before: bool = False,
          terminal_potential: TerminalPotential = TerminalPotential.ZERO) -> ShapedReward:
    """``r = r_gold + γ·Φ(s') - Φ(s)`` under the terminal rule (module docstring).

    ``succeeded_before``: an earlier transition of the episode reached success.
    """
    success = is_success(potential_after, delta)
    phase = transition_phase(succeeded_before, success)
    r_gold = 1.0 if phase is Phase.TERMINAL else 0.0
    zero = terminal_potential is TerminalPotential.ZERO
    if phase is Phase.AFTER_SUCCESS and zero:
        reward = 0.0
    else:
        next_potential = 0.0 if phase is Phase.TERMINAL and zero else potential_after
        reward = r_gold + gamma * next_potential - potential_before
    return ShapedReward(reward, potential_before, potential_after, gamma, r_gold, success, phase)
