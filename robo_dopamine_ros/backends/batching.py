"""Feeding one model from many concurrently evaluated episodes.

Each episode is a chain of engine steps that sends one to three queries at a time, far from the
batch a GPU runtime needs (upstream batches 10-16 pairs per vLLM call). Episodes are therefore
evaluated concurrently, and :class:`BatchDispatcher` merges the queries of the waiting episodes
into one backend call, dispatched as soon as every running episode is waiting or the batch is
full, so no timer is involved and one worker degenerates to plain pass-through.

:class:`EpisodeBackend` is what an episode's engines see. Within an episode, the extra metrics ask
questions the upstream passes already asked (the fused pass repeats the ``voc+`` incremental
pairs, the shuffled pass the fused pass's forward/backward ones), so an answer is reused for a
question with the same task and the same pixels in every slot; the upstream passes never reuse,
so their numbers stay those of independent queries. It also counts queries and their latency.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..core.errors import BackendError
from ..core.types import Answer, GrmBackend, Query, generate_checked

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    queries: list[Query]
    answers: list[Answer] = field(default_factory=list)
    seconds_per_query: float = 0.0
    error: BaseException | None = None
    done: bool = False


class BatchDispatcher:
    """Merges the ``generate`` calls of concurrent workers into batches of ``max_queries``.

    Workers register with :meth:`worker`; a batch goes out when the pending queries fill it or
    every registered worker is waiting. The thread that finds a batch ready runs it (one at a
    time: backends such as vLLM's ``LLM`` are not thread safe) and hands each waiter its answers,
    or the batch's exception. :meth:`abort` makes every present and future call raise at once.
    """

    def __init__(self, backend: GrmBackend, max_queries: int) -> None:
        self.backend = backend
        self.max_queries = max(1, max_queries)
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._workers = 0
        self._busy = False
        self._aborted = False

    @contextlib.contextmanager
    def worker(self) -> Iterator[None]:
        """Register the calling thread's episode for the batch-is-ready rule."""
        with self._cond:
            self._workers += 1
        try:
            yield
        finally:
            with self._cond:
                self._workers -= 1
                self._cond.notify_all()

    def abort(self) -> None:
        """Fail every waiting and later call with ``BackendError('aborted')``."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def generate(self, queries: Sequence[Query]) -> tuple[list[Answer], float]:
        """Answers for ``queries`` and the seconds per query of the batch they went out in.

        Raises:
            BackendError: The run was aborted, or the backend's own error for the batch.
        """
        request = _Request(list(queries))
        with self._cond:
            self._pending.append(request)
            self._cond.notify_all()
            while not request.done:
                if self._aborted:
                    raise BackendError('aborted')
                if self._busy or not self._ready():
                    self._cond.wait()
                    continue
                batch = self._take()
                self._busy = True
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.answers, request.seconds_per_query

    def _ready(self) -> bool:
        size = sum(len(r.queries) for r in self._pending)
        return bool(self._pending) and (size >= self.max_queries
                                        or len(self._pending) >= max(1, self._workers))

    def _take(self) -> list[_Request]:
        batch = [self._pending.pop(0)]
        size = len(batch[0].queries)
        while self._pending and size + len(self._pending[0].queries) <= self.max_queries:
            size += len(self._pending[0].queries)
            batch.append(self._pending.pop(0))
        return batch

    def _run(self, batch: list[_Request]) -> None:
        queries = [q for r in batch for q in r.queries]
        t0 = time.perf_counter()
        try:
            answers = generate_checked(self.backend, queries)
        except Exception as exc:  # handed to every waiter, whose engine flags its step
            logger.debug('batch of %d queries failed', len(queries), exc_info=True)
            for r in batch:
                r.error, r.done = exc, True
            return
        per_query = (time.perf_counter() - t0) / max(1, len(queries))
        start = 0
        for r in batch:
            r.answers = answers[start:start + len(r.queries)]
            r.seconds_per_query, r.done = per_query, True
            start += len(r.queries)


class EpisodeBackend:
    """The ``GrmBackend`` one episode's engines use: answer reuse and per-episode accounting.

    Attributes:
        reuse: Answer a question seen before in this episode from memory (extra passes only).
        sent: Queries that went to the model.
        reused: Queries answered from memory.
        seconds: Model time attributed to this episode's queries (batch time / batch size).
    """

    def __init__(self, dispatcher: BatchDispatcher) -> None:
        self._dispatcher = dispatcher
        self.model_id = dispatcher.backend.model_id
        self.reuse = False
        self.sent = 0
        self.reused = 0
        self.seconds = 0.0
        self._memory: dict[tuple[object, ...], Answer] = {}

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        keys = [_question(q) for q in queries]
        answers: list[Answer | None] = [self._memory.get(k) if self.reuse else None
                                        for k in keys]
        todo = [i for i, a in enumerate(answers) if a is None]
        if todo:
            fresh, per_query = self._dispatcher.generate([queries[i] for i in todo])
            self.sent += len(todo)
            self.seconds += per_query * len(todo)
            for i, answer in zip(todo, fresh, strict=True):
                answers[i] = answer
                if answer.error is None:
                    self._memory[keys[i]] = answer
        self.reused += len(queries) - len(todo)
        return [a for a in answers if a is not None]

    def request_stop(self) -> None:
        """Nothing to stop here: the shared backend is stopped by the runner."""

    def cancel(self) -> None:
        """Nothing to cancel here: the shared backend's calls belong to the runner."""

    def close(self) -> None:
        """Forget this episode's answers."""
        self._memory.clear()


def _question(query: Query) -> tuple[object, ...]:
    """What makes two queries the same question: task, prompt variant and every slot's pixels."""
    digests = []
    for image in query.images:
        h = hashlib.blake2b(str(image.pixels.shape).encode(), digest_size=16)
        h.update(image.pixels.tobytes())
        digests.append(h.digest())
    return (query.task, query.variant, *digests)
