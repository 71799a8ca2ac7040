"""Outcome -> per-frame task state: the ground-truth progress shape of each outcome."""

from __future__ import annotations

import itertools

import numpy as np

from .spec import Outcome


def state_trajectory(outcome: Outcome, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-frame task state: knots (time fraction, state) joined by monotone ramps whose
    speed varies randomly, so progress is not a straight line in time."""
    if outcome is Outcome.SUCCESS:
        knots = [(0.0, 0.0), (rng.uniform(0.78, 0.88), 1.0), (1.0, 1.0)]
    elif outcome is Outcome.FAIL:   # reach, close on nothing, hold, back off
        knots = [(0.0, 0.0), (0.4, 0.38), (0.5, 0.38), (0.8, 0.1), (1.0, 0.1)]
    elif outcome is Outcome.STALL:
        plateau = rng.uniform(0.5, 0.6)
        knots = [(0.0, 0.0), (0.45, plateau), (1.0, plateau)]
    else:
        knots = [(0.0, 0.0), (0.5, 0.7), (0.9, 0.2), (1.0, 0.2)]
    s = np.zeros(n, dtype=np.float64)
    for (t0, a), (t1, b) in itertools.pairwise(knots):
        f0, f1 = round(t0 * (n - 1)), round(t1 * (n - 1))
        if f1 <= f0:
            continue
        steps = np.cumsum(rng.uniform(0.4, 1.6, size=f1 - f0))
        s[f0 + 1:f1 + 1] = a + (b - a) * steps / steps[-1]
    return np.clip(s, 0.0, 1.0)
