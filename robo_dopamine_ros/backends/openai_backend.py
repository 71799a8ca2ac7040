"""A GRM behind an OpenAI-compatible ``/chat/completions`` endpoint (a vLLM server, a hosted API).

Serving the model from a separate process keeps the ROS environment free of GPU-stack pins, and
the same backend evaluates frontier models the way upstream's ``eval/evaluation_api.py`` does
(docs/upstream.md §7.2); the request itself is :mod:`.openai_wire`. What it adds over upstream's
loop:

* one pooled HTTP client (httpx) per backend: connections are kept alive between requests, at
  most ``max_workers`` of them, shared by every ``generate`` call so several callers together
  never exceed the bound;
* separate connect and read timeouts per attempt, and a deadline per reading (retries, backoff
  and a wait for a free slot included), after which the caller has its answer — a flagged one;
* retries only where another attempt can help: the connection failed or dropped, or the server
  said it is overloaded (HTTP 429) or not ready (503), honouring its ``Retry-After``; the waits
  double and are jittered so that a fleet does not retry in step. A read timeout is final (the
  server is most likely still computing, and a retry would pile onto it), as is any other HTTP
  error or a malformed body;
* per-call cancellation: every ``generate`` call has its own wake-up, so ``cancel`` interrupts
  the calls in flight at that moment (they raise at once, their backoff waits end) and never a
  later or another caller's one;
* a failed query is ``Answer(error=...)`` (a flagged result), never upstream's fake
  ``<score>0%</score>``.

The API key is read from an environment variable (default ``OPENAI_API_KEY``) when the backend is
built; it is never logged, never put in an error message or a result, and not in ``repr``.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from ..core.errors import BackendError, BackendStoppedError, GrmError
from ..core.types import Answer, ImageKey, KeyedImage, Query
from .openai_config import OpenAIConfig
from .openai_wire import (
    MalformedResponseError,
    answer_text,
    image_data_url,
    image_part,
    request_payload,
)
from .prefill import ANSWER_HEAD

logger = logging.getLogger(__name__)

#: Encoded images kept per backend: one episode uses 11 at a time (like the vision cache).
PART_CACHE_ENTRIES = 64
#: The server refused before computing anything and asks to come back: worth another attempt.
RETRY_STATUSES = frozenset({429, 503})
#: An idle kept-alive connection is closed after this long (servers drop theirs after 5-75 s).
KEEPALIVE_EXPIRY_S = 30.0
#: How long a caller waits past the deadline for the attempts in flight to report themselves.
DEADLINE_GRACE_S = 0.25


class _Secret:
    """Holds the API key so that printing, logging or ``repr`` of its owner cannot show it."""

    __slots__ = ('_value',)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with the key masked, for messages that may echo a request."""
        return text.replace(self._value, '***') if self._value else text

    def __repr__(self) -> str:
        return '<secret>'


class _RetryableError(Exception):
    """One attempt failed where another can succeed (no connection, server overloaded)."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _FinalError(Exception):
    """A failure that another attempt would repeat or make worse (bad request, auth, a
    malformed body, a server still computing past the read timeout)."""


class _Call:
    """One ``generate`` call: its deadline, and a cancel flag and wake-up of its own, so that
    one caller's cancel or end never touches a concurrent caller's batch."""

    def __init__(self, deadline_s: float, readings: int) -> None:
        self.deadline = time.monotonic() + deadline_s
        #: Set by ``cancel``/``request_stop``: backoff waits end, queued readings never start.
        self.cancelled = threading.Event()
        #: Set once every reading is in, or on cancel: what the caller waits for.
        self.settled = threading.Event()
        self._left = readings
        self._lock = threading.Lock()
        if readings == 0:
            self.settled.set()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def cancel(self) -> None:
        self.cancelled.set()
        self.settled.set()

    def reading_done(self, _future: Future[Answer]) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.settled.set()


def _retry_after(response: httpx.Response) -> float:
    """The server's ``Retry-After`` in seconds (the delta-seconds form), else 0."""
    try:
        return max(0.0, float(response.headers.get('Retry-After', '')))
    except ValueError:
        return 0.0


class OpenAIBackend:
    """A ``GrmBackend`` over HTTP; ``generate`` runs the batch's requests concurrently.

    A stop request (or ``close``) is sticky: the calls in flight raise ``BackendStoppedError``
    at once, and so does every later ``generate``. A request already on the wire is left to
    finish or time out in the pool (its answer is dropped).
    """

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.model_id = config.model
        self._head = ANSWER_HEAD if config.answer_prefill else ''
        self._url = config.base_url.rstrip('/') + '/chat/completions'
        self._key = _Secret(os.environ.get(config.api_key_env, ''))
        if not self._key.reveal():
            logger.warning('environment variable %s is not set: requests go without an '
                           'Authorization header', config.api_key_env)
        self._stop = threading.Event()
        self._calls: set[_Call] = set()
        self._calls_lock = threading.Lock()
        self._parts: OrderedDict[tuple[ImageKey, tuple[int, ...]], bytes] = OrderedDict()
        self._parts_lock = threading.Lock()
        self._random = random.Random()
        # TCP_NODELAY: a kept-alive connection must not hold a request's last segment back
        # until the server acknowledges the previous one (Nagle and delayed ACKs: up to 40 ms).
        self._client = httpx.Client(transport=httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=config.max_workers,
                                max_keepalive_connections=config.max_workers,
                                keepalive_expiry=KEEPALIVE_EXPIRY_S),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]))
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix='grm-openai')

    def __repr__(self) -> str:
        return (f'OpenAIBackend(model={self.config.model!r}, base_url={self.config.base_url!r}, '
                f'api_key_env={self.config.api_key_env!r})')

    def set_prefill(self, on: bool, head: str | None = None) -> None:
        """Switch answer prefill for later calls (``head``: another head than ``<score``)."""
        self._head = (ANSWER_HEAD if head is None else head) if on else ''

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer each query by its deadline; at most ``max_workers`` requests are in flight.

        Raises:
            BackendError: The backend is closed.
            BackendStoppedError: The call was cancelled, or the backend stopped.
        """
        pool = self._pool
        if pool is None:
            raise BackendError('the backend is closed')
        for query in queries:       # each distinct image once, before the requests share them
            for image in query.images:
                self._image_part(image)
        call = _Call(self.config.deadline, len(queries))
        with self._calls_lock:      # a stop either sees this call or is seen here
            if self._stop.is_set():
                raise BackendStoppedError('stopped')
            self._calls.add(call)
        try:
            try:
                futures = [pool.submit(self._answer, q, call) for q in queries]
            except RuntimeError as exc:                  # close() shut the pool meanwhile
                raise BackendError('the backend is closed') from exc
            for future in futures:
                future.add_done_callback(call.reading_done)
            call.settled.wait(max(0.0, call.remaining()) + DEADLINE_GRACE_S)
        finally:
            with self._calls_lock:
                self._calls.discard(call)
        if call.cancelled.is_set():
            raise BackendStoppedError('stopped' if self._stop.is_set() else 'cancelled')
        return [f.result() if f.done() and not f.cancelled() else self._late()
                for f in futures]

    def _answer(self, query: Query, call: _Call) -> Answer:
        t0 = time.perf_counter()
        try:
            payload = request_payload(
                query, model=self.config.model, sampling=self.config.sampling,
                max_tokens=self.config.max_tokens, part=self._image_part, head=self._head)
        except GrmError as exc:
            return Answer('', error=f'{type(exc).__name__}: {exc}')
        delay = self.config.retry_delay_s
        attempt = 0
        while True:
            if call.cancelled.is_set():     # nobody waits for this answer any more
                return Answer('', error='cancelled')
            if call.remaining() <= 0:
                return self._failed(_FinalError(f'timed out: no attempt left within the '
                                                f'{self.config.deadline:g} s deadline'),
                                    attempt, t0)
            attempt += 1
            try:
                text, meta = answer_text(self._post(payload, call.remaining()), self._head)
            except (MalformedResponseError, _FinalError) as exc:
                return self._failed(exc, attempt, t0)
            except _RetryableError as exc:
                wait = max(exc.retry_after_s, delay * self._random.uniform(0.5, 1.0))
                if attempt == self.config.max_retries or wait >= call.remaining():
                    return self._failed(exc, attempt, t0)
                logger.warning('chat completion attempt %d/%d failed (%s); retrying in %.2f s',
                               attempt, self.config.max_retries, self._key.scrub(str(exc)),
                               wait)
                if call.cancelled.wait(wait):
                    return Answer('', error='cancelled')
                delay *= 2
                continue
            meta.update(latency_s=time.perf_counter() - t0, attempts=float(attempt))
            return Answer(text, meta=meta)

    def _image_part(self, image: KeyedImage) -> bytes:
        """The image's content item (its data URL, serialised), made once per image key:
        consecutive steps share REF START, the goal and the BEFORE views, so a step encodes its
        3 new views instead of 24 images."""
        key = (image.key, image.pixels.shape)
        with self._parts_lock:
            part = self._parts.get(key)
            if part is not None:
                self._parts.move_to_end(key)
                return part
        part = image_part(image_data_url(image, self.config.image_format,
                                         self.config.jpeg_quality))
        with self._parts_lock:
            self._parts[key] = part
            while len(self._parts) > PART_CACHE_ENTRIES:
                self._parts.popitem(last=False)
        return part

    def _failed(self, exc: Exception, attempts: int, t0: float) -> Answer:
        message = self._key.scrub(f'{exc} (after {attempts} attempt(s))')
        logger.error('chat completion failed: %s', message)
        return Answer('', error=message, meta={'latency_s': time.perf_counter() - t0,
                                               'attempts': float(attempts)})

    def _late(self) -> Answer:
        """The answer of a reading still on the wire when the caller's deadline passed."""
        return Answer('', error=f'timed out: no answer within the {self.config.deadline:g} s '
                                f'deadline', meta={'latency_s': self.config.deadline})

    def _post(self, payload: bytes, remaining_s: float) -> bytes:
        """One attempt, its timeouts cut to the time left; classifies every failure.

        Raises:
            _RetryableError: No connection, a dropped one, or HTTP 429/503.
            _FinalError: A read or write timeout, any other HTTP error, a client-side error.
        """
        headers = {'Content-Type': 'application/json', 'Accept': 'application/json'}
        key = self._key.reveal()
        if key:
            headers['Authorization'] = f'Bearer {key}'
        read = min(self.config.timeout_s, remaining_s)
        timeout = httpx.Timeout(read, connect=min(self.config.connect_timeout_s, read),
                                pool=remaining_s)
        try:
            response = self._client.post(self._url, content=payload, headers=headers,
                                         timeout=timeout)
        except (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.NetworkError,
                httpx.RemoteProtocolError) as exc:       # nothing computed, or the link dropped
            raise _RetryableError(f'{type(exc).__name__} on {self._url}: {exc}') from exc
        except httpx.TimeoutException as exc:            # the server is still computing
            raise _FinalError(f'{type(exc).__name__} on {self._url}: timed out after '
                              f'{read:g} s') from exc
        except httpx.HTTPError as exc:                   # a proxy, TLS or protocol misuse
            raise _FinalError(f'{type(exc).__name__} on {self._url}: {exc}') from exc
        if response.is_success:
            return response.content
        # Masked before it is cut short, so no part of the key survives an echo.
        detail = self._key.scrub(response.text)[:200]
        message = f'HTTP {response.status_code} from {self._url}: {detail}'
        if response.status_code in RETRY_STATUSES:
            raise _RetryableError(message, _retry_after(response))
        raise _FinalError(message)

    def _cancel_calls(self) -> None:
        with self._calls_lock:
            calls = list(self._calls)
        for call in calls:
            call.cancel()

    def request_stop(self) -> None:
        """Interrupt the calls in flight and refuse later ones (for shutdown)."""
        with self._calls_lock:
            self._stop.set()
        self._cancel_calls()

    def cancel(self) -> None:
        """Interrupt the calls in flight now (they raise); later calls run normally."""
        self._cancel_calls()

    def close(self) -> None:
        """Stop, wait for the requests on the wire to end, and close the connections."""
        self.request_stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
