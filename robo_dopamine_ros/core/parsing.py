"""Parse a GRM answer into a hop in [-1, 1], with a typed result that never hides a failure.

Upstream reads the text after the last ``<score>``, cuts at ``</score>``, drops ``%`` and calls
``float()``; any failure silently becomes a hop of 0, which a learner cannot tell from "no
change". Here a failure is ``ParseStatus.FAILED`` with ``hop=None`` and the raw text kept; only
the explicit ``upstream_zero`` option reproduces upstream's 0 (as ``ParseStatus.ZEROED``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .confidence import ScoreDistribution

_NUMBER = r'[+-]?\d+(?:\.\d+)?'
#: A well-formed answer: ``<score>+37.0%</score>``, ``<score>-12%</score>``, ``<score>0%</score>``.
_STRICT = re.compile(rf'<score>\s*({_NUMBER})\s*%?\s*</score>')
#: The start of a value after ``<score>`` (runaway outputs such as ``<score>-25.0.0.5.6.6…``).
_AFTER_TAG = re.compile(rf'\s*({_NUMBER})')
#: The API-evaluation fallback: the last percentage anywhere in the text.
_PERCENT = re.compile(rf'({_NUMBER})\s*%')


class ParseStatus(enum.IntEnum):
    """How a hop was read; the integer values are those of the ``Progress`` message."""

    OK = 0        # a well-formed <score>…</score>
    LENIENT = 1   # a value recovered from a malformed answer (see ``ScoreReading.reason``)
    FAILED = 2    # no value; hop is None
    ZEROED = 3    # no value, upstream's 0 substituted on request (upstream_zero=True)
    SKIPPED = 4   # the reading was not requested (mode off) — set by the engine, not the parser


@dataclass(frozen=True)
class ScoreReading:
    """The parsed answer: ``hop`` clamped to [-1, 1], ``hop_raw`` as the model said it (/100);
    ``distribution``: the model's confidence, where the backend scored it."""

    text: str
    status: ParseStatus
    hop: float | None = None
    hop_raw: float | None = None
    reason: str = ''
    distribution: ScoreDistribution | None = None

    @property
    def usable(self) -> bool:
        """Whether ``hop`` holds a value the progress formulas may use."""
        return self.hop is not None


def _reading(text: str, value: float, status: ParseStatus, reason: str = '') -> ScoreReading:
    raw = value / 100.0
    return ScoreReading(text=text, status=status, hop=min(1.0, max(-1.0, raw)), hop_raw=raw,
                        reason=reason)


def parse_score(text: str, *, lenient: bool = True, upstream_zero: bool = False) -> ScoreReading:
    """Read the hop from a GRM answer.

    Args:
        text: The generated answer.
        lenient: Also recover a value from malformed answers: the first signed number after the
            last ``<score>`` (runaway decimals such as ``<score>-25.0.0.5…`` give -25.0), else the
            last ``NN%`` in the text (the upstream API parser's fallback). Such readings are
            ``LENIENT`` and say why.
        upstream_zero: Substitute upstream's 0 for an unparseable answer (``ZEROED``), for parity
            runs only.

    Returns:
        A ``ScoreReading``; values beyond ±100 % are clamped in ``hop`` and kept in ``hop_raw``.
    """
    if not isinstance(text, str):
        text = '' if text is None else str(text)
    strict = _STRICT.findall(text)
    if strict:
        return _reading(text, float(strict[-1]), ParseStatus.OK)
    if lenient:
        tag = text.rfind('<score>')
        if tag >= 0:
            match = _AFTER_TAG.match(text, tag + len('<score>'))
            if match:
                return _reading(text, float(match.group(1)), ParseStatus.LENIENT,
                                'malformed <score> value; leading number used')
        percents = _PERCENT.findall(text)
        if percents:
            return _reading(text, float(percents[-1]), ParseStatus.LENIENT,
                            'no <score> tag; last percentage used')
    if upstream_zero:
        return ScoreReading(text=text, status=ParseStatus.ZEROED, hop=0.0, hop_raw=0.0,
                            reason='unparseable answer; upstream 0 substituted')
    return ScoreReading(text=text, status=ParseStatus.FAILED,
                        reason=f'no score in answer {_excerpt(text)!r}')


def _excerpt(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + '…'


def format_score(hop: float) -> str:
    """Upstream's training label: one decimal, explicit sign (``<score>+37.0%</score>``)."""
    return f'<score>{hop * 100:+.1f}%</score>'
