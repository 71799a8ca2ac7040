"""The backend interface every GRM runtime implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..core.types import Answer, Query


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
