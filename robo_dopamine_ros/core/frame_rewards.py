"""Per-frame transitions from scored samples: what a learner stepping every frame is paid.

The engine scores every k-th frame; a learner that steps every frame (LeRobot's ``next.*``
convention: the row of frame ``t`` holds the transition ``t -> t+1``) needs a value per frame.
The rule, written once here:

* **Potential** ``Φ̂(t)``: the samples' fused progress, linearly interpolated between scored
  frames (a held sample keeps the engine's held value), so a consumer that differentiates it
  sees the change spread over the span instead of zeros and a jump.
* **Discount**: each frame of a span uses ``g``, the discount of the transition ending the span
  converted to one frame period (``γ ** (frame period / transition period)``, see
  :func:`per_frame_gamma`; the engine's transition after a held sample starts further back).
* **Reward** of frame ``t`` in the span of sample ``k``: ``g·Φ̂(t+1) - Φ̂(t)`` (potential-based
  on ``Φ̂``, so the discounted sum over the span is the engine's ``γ_span·Φ_k - Φ_{k-1}``).
  The terminal rule is :func:`.shaping.transition_phase`'s: in the span whose sample is
  ``TERMINAL`` the last frame (``t = f_k - 1``) gets ``r_gold + g·Φ_T - Φ̂(t)`` with ``Φ_T`` 0
  (``ZERO``) or ``Φ_k`` (``KEEP``); frames of ``AFTER_SUCCESS`` spans get 0 under ``ZERO``.
* **done** at the terminal frame (the episode terminates at success) and at the last frame
  (the recording ends); **success** from the terminal frame on (latched); **valid** is the
  validity of the sample that ends the frame's span. The last frame has no transition: reward 0,
  done, valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .errors import ConfigError
from .shaping import Phase, TerminalPotential


@dataclass(frozen=True)
class ScoredFrame:
    """One scored sample, as the expansion needs it.

    ``frame_gamma`` is the per-frame discount of the transition ending at this sample (ignored
    for the episode's first sample) and ``phase`` that transition's phase under the terminal
    rule.
    """

    frame: int
    progress: float
    valid: bool
    frame_gamma: float = 1.0
    phase: Phase = Phase.RUNNING


@dataclass(frozen=True)
class FrameTransitions:
    """Per-frame arrays of one episode, index = frame index."""

    progress: np.ndarray        # Φ̂(t), float64
    reward: np.ndarray          # reward of the transition t -> t+1, float64
    done: np.ndarray            # bool
    success: np.ndarray         # bool
    valid: np.ndarray           # bool


def per_frame_gamma(gamma: float, transition_s: float, frame_s: float) -> float:
    """The discount ``gamma`` of a ``transition_s``-long transition, per ``frame_s`` frame."""
    if transition_s <= 0 or frame_s <= 0:
        raise ConfigError(f'periods must be > 0, got {transition_s!r} and {frame_s!r}')
    return gamma ** (frame_s / transition_s)


def frame_transitions(num_frames: int, samples: Sequence[ScoredFrame],
                      terminal_potential: TerminalPotential = TerminalPotential.ZERO
                      ) -> FrameTransitions:
    """Spread the scored samples of one episode over its ``num_frames`` frames (module doc).

    Raises:
        ConfigError: Samples not strictly increasing from frame 0 to the last frame.
    """
    frames = [s.frame for s in samples]
    if not samples or frames[0] != 0 or frames[-1] != num_frames - 1 \
            or any(b <= a for a, b in pairwise(frames)):
        raise ConfigError(f'scored frames must increase from 0 to {num_frames - 1}: {frames}')
    potential = np.interp(np.arange(num_frames), frames, [s.progress for s in samples])
    reward = np.zeros(num_frames)
    done = np.zeros(num_frames, bool)
    success = np.zeros(num_frames, bool)
    valid = np.ones(num_frames, bool)
    zero = TerminalPotential(terminal_potential) is TerminalPotential.ZERO
    for before, after in pairwise(samples):
        span = slice(before.frame, after.frame)
        g = after.frame_gamma
        valid[span] = after.valid
        if after.phase is Phase.AFTER_SUCCESS:
            success[span] = True
            if zero:
                continue
        reward[span] = g * potential[before.frame + 1:after.frame + 1] - potential[span]
        if after.phase is Phase.TERMINAL:
            last = after.frame - 1
            end_potential = 0.0 if zero else after.progress
            reward[last] = 1.0 + g * end_potential - potential[last]
            done[last] = success[last] = True
    done[-1] = True
    success[-1] = success[-1] or any(s.phase is not Phase.RUNNING for s in samples)
    reward[-1] = 0.0
    return FrameTransitions(potential, reward, done, success, valid)
