"""The GRM's confidence: a distribution over the score, from the model's own probabilities.

Not the top-k log-probabilities at the greedy positions: those are conditional on the greedy
prefix (after ``>+`` the model is no longer asked about ``-``), and servers cap them at 20.
Instead a backend scores every candidate answer of :data:`CANDIDATE_HOPS` by teacher forcing
(the log-probability of its whole token sequence after the prompt) and normalises over them.
``mass`` says how much of the model's probability the candidates cover: a model that writes
``+37.0`` puts its mass between grid points, so a low ``mass`` means the grid is coarse for it,
not that it is unsure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .parsing import format_score

#: The scalars of :meth:`ScoreDistribution.summary` (record columns ``<mode>_confidence_<name>``).
CONFIDENCE_FIELDS: tuple[str, ...] = ('mean', 'spread', 'p_positive', 'mass')
#: Candidate hops: -100 % … +100 % in steps of 10 %, each in the training format.
CANDIDATE_HOPS: tuple[float, ...] = tuple(v / 100 for v in range(-100, 101, 10))


def candidate_answers() -> list[str]:
    """The candidates' answer texts, as the model was trained to write them."""
    return [format_score(hop) for hop in CANDIDATE_HOPS]


@dataclass(frozen=True)
class ScoreDistribution:
    """Probabilities of the candidate hops (summing to 1) and the mass they cover."""

    hops: tuple[float, ...]
    probabilities: tuple[float, ...]
    mass: float

    @classmethod
    def from_logprobs(cls, hops: Sequence[float], logprobs: Sequence[float]) -> ScoreDistribution:
        """Normalise sequence log-probabilities over the candidates (a stable softmax)."""
        top = max(logprobs)
        weights = [math.exp(lp - top) for lp in logprobs]
        total = sum(weights)
        return cls(tuple(hops), tuple(w / total for w in weights),
                   min(1.0, math.exp(top) * total))

    @property
    def mean(self) -> float:
        return sum(h * p for h, p in zip(self.hops, self.probabilities, strict=True))

    @property
    def spread(self) -> float:
        """Standard deviation of the hop: the model's uncertainty, in hop units."""
        mean = self.mean
        var = sum(p * (h - mean) ** 2 for h, p in zip(self.hops, self.probabilities, strict=True))
        return math.sqrt(max(0.0, var))

    @property
    def p_positive(self) -> float:
        """Probability of progress (hop > 0); a sign error is likely where it is near 0.5."""
        return sum(p for h, p in zip(self.hops, self.probabilities, strict=True) if h > 0)

    def summary(self) -> dict[str, float]:
        """The scalars a record, a result line or an RL ``info`` carries."""
        return dict(zip(CONFIDENCE_FIELDS, (self.mean, self.spread, self.p_positive, self.mass),
                        strict=True))
