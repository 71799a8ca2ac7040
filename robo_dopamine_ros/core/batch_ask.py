"""One step's questions to the GRM, asked as one batch: identical queries once, answers parsed.

The engine's modes often ask the same thing (incremental and forward right after START), and a
backend's failure must become failed readings of a held step rather than stop a running node, so
this one call is where deduplication, parsing and the runtime boundary live.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from .errors import BackendStoppedError
from .parsing import ParseStatus, ScoreReading, parse_score
from .types import GrmBackend, Mode, Query, generate_checked

log = logging.getLogger(__name__)


def ask_batch(backend: GrmBackend, queries: dict[Mode, Query], *, lenient: bool,
              upstream_zero: bool) -> tuple[dict[Mode, ScoreReading], float, str | None]:
    """One batched backend call; identical queries are asked once.

    Returns:
        The reading per mode, the call's latency in seconds, and the backend's error message when
        the whole call failed (then every reading is FAILED).

    Raises:
        BackendStoppedError: The backend is shutting down (the caller is stopping).
    """
    unique: list[Query] = []
    index: dict[tuple[object, ...], int] = {}
    slot: dict[Mode, int] = {}
    for mode, q in queries.items():
        sig = tuple(img.key for img in q.images)
        if sig not in index:
            index[sig] = len(unique)
            unique.append(q)
        slot[mode] = index[sig]
    t0 = time.perf_counter()
    try:
        answers = generate_checked(backend, unique)
    except BackendStoppedError:      # shutdown, not a failed step: the caller is stopping
        raise
    except Exception as err:  # a runtime boundary: log and flag, never crash the node
        log.error('GRM backend failed: %s', err, exc_info=True)
        latency = time.perf_counter() - t0
        failed = ScoreReading('', ParseStatus.FAILED, reason=f'backend error: {err}')
        return {m: failed for m in queries}, latency, str(err)
    latency = time.perf_counter() - t0
    scores: dict[Mode, ScoreReading] = {}
    for mode, i in slot.items():
        answer = answers[i]
        if answer.error:
            scores[mode] = ScoreReading(answer.text, ParseStatus.FAILED,
                                        reason=f'backend error: {answer.error}')
        else:
            scores[mode] = replace(parse_score(answer.text, lenient=lenient,
                                               upstream_zero=upstream_zero),
                                   distribution=answer.distribution)
    return scores, latency, None
