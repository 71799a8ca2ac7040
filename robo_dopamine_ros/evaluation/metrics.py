"""Scores of progress curves and their per-dataset aggregation.

Every metric of the project lives here (the demo GRM's evaluation imports them too).

VOC is upstream's: the Spearman rank correlation between the time order ``0 .. T-1`` and the
progress curve, 0 when it cannot be computed (fewer than 2 points, a constant curve, NaN or a
value outside [-1, 1]); both upstream scripts agree on that (docs/upstream.md §7.2). Kendall's τ
(τ-b, tie aware) follows the same rule. What the two scripts disagree on is an episode that raised:
the GRM script counts it as VOC 0 (the denominator still grows), the API script skips it; both
means are kept.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr


class Convention(str, enum.Enum):
    """How an episode that failed enters a dataset mean (docs/upstream.md §7.2)."""

    GRM = 'grm'   # eval/evaluation_grm.py: VOC 0, counted
    API = 'api'   # eval/evaluation_api.py: skipped


def voc(curve: Sequence[float]) -> float:
    """Upstream's VOC of one curve: Spearman ρ against its time order, 0 when undefined."""
    return _rank_correlation(spearmanr, curve)


def kendall_tau(curve: Sequence[float]) -> float:
    """Kendall's τ-b against the time order, 0 when undefined (the VOC rule)."""
    return _rank_correlation(kendalltau, curve)


def _rank_correlation(fn: Callable[..., Any], curve: Sequence[float]) -> float:
    if len(curve) < 2:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')          # scipy warns on a constant curve, then NaN
        value = float(fn(np.arange(len(curve)), np.asarray(curve, dtype=float))[0])
    return value if -1.0 <= value <= 1.0 else 0.0     # NaN fails the comparison


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman ρ between two curves (e.g. predicted and true progress), 0 when either is
    constant: undefined, as for VOC."""
    if len(set(a)) < 2 or len(set(b)) < 2:
        return 0.0
    return float(spearmanr(a, b)[0])


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """ROC AUC of a score separating two groups: the chance a positive scores above a negative,
    ties counting half (Mann-Whitney); None when a group is empty."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def hop_signs(hops: Sequence[float | None], expected: int) -> tuple[int, int]:
    """``(correct, total)``: hops with the expected sign (+1 forward pairs, -1 reversed ones).

    A demonstration progresses, so a forward pair should read positive and its time-reversed
    pair negative. A zero hop or a missing one (unparseable answer) counts as wrong: it tells a
    learner nothing about direction.
    """
    return sum(1 for h in hops if h is not None and h * expected > 0), len(hops)


def convention_means(vocs: Sequence[float], failed: int) -> dict[str, float]:
    """The dataset mean under both failed-episode conventions (0 for an empty dataset)."""
    total = float(sum(vocs))
    counted = len(vocs) + failed
    return {Convention.GRM.value: total / counted if counted else 0.0,
            Convention.API.value: total / len(vocs) if vocs else 0.0}


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that exist; None when there are none."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else None


def ratio(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator``; None when nothing was counted."""
    return numerator / denominator if denominator else None
