"""The backend interface every GRM runtime implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..core.types import Answer, Query

#: Generation of an answer ends once this string is complete (the answer is one ``<score>`` tag).
STOP_STRING = '</score>'
#: Upstream's vLLM ``SamplingParams`` (spec §2.2), minus its 1024-token budget.
UPSTREAM_SAMPLING: dict[str, float | int] = {'temperature': 0.1, 'top_p': 0.9, 'top_k': 50}


@runtime_checkable
class GrmBackend(Protocol):
    """A GRM runtime. ``generate`` answers a batch in one call (one forward batch where possible).

    A failure of one query is an ``Answer`` with ``error`` set, never an exception; an exception
    means the whole batch failed (e.g. the backend was stopped) and is a ``BackendError``.
    """

    #: Identifies the model in results (checkpoint id or path).
    model_id: str

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer each query; ``len(result) == len(queries)``, same order."""
        ...

    def request_stop(self) -> None:
        """Ask a running ``generate`` to stop between decode steps and refuse later calls
        (sticky: for shutdown)."""
        ...

    def cancel(self) -> None:
        """Interrupt the ``generate`` in flight, if any (it raises ``BackendStoppedError``);
        later calls run normally. The node cancels the step in flight when it is deactivated."""
        ...

    def close(self) -> None:
        """Release the model and its memory."""
        ...
