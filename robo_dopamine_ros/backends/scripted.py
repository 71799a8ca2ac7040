"""``ScriptedBackend``: a TEST DOUBLE for tests and benchmarks, never a product default.

Its answer is a function of the pixels it receives, so a wrong slot order, a swapped colour
channel or a stale image changes the answer and a test notices. It also keeps the last batches it
was given, so tests can check batching and image keys.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from ..core.types import Answer, Query

Script = Callable[[Query], str]


def digest_hop(query: Query) -> int:
    """A hop in [-100, 100] %, from a digest of all 8 images in slot order."""
    h = hashlib.sha256()
    for image in query.images:
        h.update(str(image.pixels.shape).encode())
        h.update(image.pixels.tobytes())
    return int.from_bytes(h.digest()[:8], 'big') % 201 - 100


def digest_script(query: Query) -> str:
    """Answer ``<score>±NN%</score>`` with the pixel-digest hop."""
    return f'<score>{digest_hop(query):+d}%</score>'


def sequence_script(answers: Iterable[str]) -> Script:
    """Answer with the given texts in turn (one per query), whatever the images."""
    it = iter(answers)

    def script(query: Query) -> str:
        try:
            return next(it)
        except StopIteration:
            raise RuntimeError('scripted answers exhausted') from None
    return script


class ScriptedBackend:
    """A GRM stand-in answering each query with ``script(query)`` (default: the pixel digest).

    A script may raise ``RuntimeError`` to simulate a failing query: that query's ``Answer``
    carries the error.
    """

    def __init__(self, script: Script = digest_script,
                 model_id: str = 'scripted-test-double', keep_batches: int = 64) -> None:
        self.script = script
        self.model_id = model_id
        #: The last ``keep_batches`` batches (bounded: a long node run must not grow memory).
        self.batches: deque[list[Query]] = deque(maxlen=keep_batches)
        self._stopped = False

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        self.batches.append(list(queries))
        answers = []
        for q in queries:
            try:
                answers.append(Answer(self.script(q)))
            except RuntimeError as err:
                answers.append(Answer('', error=f'{type(err).__name__}: {err}'))
        return answers

    def request_stop(self) -> None:
        self._stopped = True

    def cancel(self) -> None:
        """Nothing to interrupt: every answer is immediate."""

    def close(self) -> None:
        self.batches.clear()
