"""A GRM behind an OpenAI-compatible ``/chat/completions`` endpoint (a vLLM server, a hosted API).

Serving the model from a separate process keeps the ROS environment free of GPU-stack pins, and
the same backend evaluates frontier models the way upstream's ``eval/evaluation_api.py`` does
(spec §7.2): the prompt split around the 8 images exactly as :func:`core.prompt.user_content`
builds it, images as base64 data URLs (JPEG like upstream, or lossless PNG), one user turn and no
system message (the server's chat template adds its default one).

Only the standard library talks HTTP, so the package gains no dependency. What it adds over
upstream's loop:

* bounded concurrency: one thread pool of ``max_workers`` shared by every ``generate`` call, so
  several callers together never exceed it;
* a timeout per socket operation and retries with exponential backoff on transient failures
  (timeouts, connection errors, HTTP 408/429/5xx; upstream: 5 attempts from 2 s) — other errors,
  such as a 401 or a malformed body, are final at once because repeating them cannot help;
* ``stop: ['</score>']`` and a small ``max_tokens`` so runaway answers end early; the stop string
  is re-appended when the server stopped on it, so the parser sees a well-formed tag;
* a failed query is ``Answer(error=...)`` (a flagged result), never upstream's fake
  ``<score>0%</score>``.

The API key is read from an environment variable (default ``OPENAI_API_KEY``) when the backend is
built; it is never logged, never put in an error message or a result, and not in ``repr``.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..core.errors import BackendError, BackendStoppedError, ConfigError, GrmError
from ..core.prompt import user_content
from ..core.types import Answer, ImageKey, KeyedImage, Query
from .decoding import STOP_STRING

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = 'https://api.openai.com/v1'
DEFAULT_KEY_ENV = 'OPENAI_API_KEY'
#: Upstream's API evaluation samples at 0.1; greedy (0.0) makes a reward a function of images.
UPSTREAM_TEMPERATURE = 0.1
IMAGE_FORMATS = ('jpeg', 'png')
#: Encoded images kept per backend: one episode uses 11 at a time (like the vision cache).
URL_CACHE_ENTRIES = 64


@dataclass(frozen=True, kw_only=True)
class OpenAIConfig:
    """Where the server is and how to talk to it.

    Attributes:
        model: The model name the server serves (``--served-model-name`` of a vLLM server).
        base_url: The API root, up to and including ``/v1``.
        api_key_env: Name of the environment variable holding the key; unset means no
            ``Authorization`` header (local servers often need none).
        image_format: ``'jpeg'`` (upstream's data-URL type) or ``'png'`` (lossless).
        jpeg_quality: JPEG quality, 1..95.
        max_workers: Requests in flight at most, across all callers.
        timeout_s: Timeout of each socket operation (connect, each read) of one attempt.
        max_retries: Attempts per query in all, transient failures only (upstream: 5).
        retry_delay_s: Wait before the second attempt; doubles after each (upstream: 2 s).
        max_tokens: Answer budget; ``<score>+37.0%</score>`` is about 10 tokens.
        upstream_sampling: Temperature 0.1 as upstream instead of 0.0.
    """

    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = DEFAULT_KEY_ENV
    image_format: str = 'jpeg'
    jpeg_quality: int = 95
    max_workers: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    retry_delay_s: float = 2.0
    max_tokens: int = 32
    upstream_sampling: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f'model must name the served model, got {self.model!r}')
        if not self.base_url.startswith(('http://', 'https://')):
            raise ConfigError(f'base_url must be an http(s) URL, got {self.base_url!r}')
        if not self.api_key_env.strip():
            raise ConfigError('api_key_env must name an environment variable')
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f'image_format must be one of {IMAGE_FORMATS}, got '
                              f'{self.image_format!r}')
        if not 1 <= self.jpeg_quality <= 95:
            raise ConfigError(f'jpeg_quality must be in 1..95, got {self.jpeg_quality!r}')
        for name in ('max_workers', 'max_retries', 'max_tokens'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f'{name} must be an integer >= 1, got {value!r}')
        if not self.timeout_s > 0:
            raise ConfigError(f'timeout_s must be > 0, got {self.timeout_s!r}')
        if not self.retry_delay_s >= 0:
            raise ConfigError(f'retry_delay_s must be >= 0, got {self.retry_delay_s!r}')

    @property
    def temperature(self) -> float:
        return UPSTREAM_TEMPERATURE if self.upstream_sampling else 0.0


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


class _TransientError(Exception):
    """A transient failure of one attempt: worth another one after a backoff."""


class _FinalError(Exception):
    """A failure that another attempt would repeat (bad request, auth, malformed body)."""


def image_data_url(image: KeyedImage, image_format: str = 'jpeg', quality: int = 95) -> str:
    """Encode an RGB image as a ``data:`` URL (the pixels the engine prepared, unchanged size)."""
    buf = io.BytesIO()
    pil = Image.fromarray(image.pixels)
    if image_format == 'jpeg':
        pil.save(buf, format='JPEG', quality=quality)
    else:
        pil.save(buf, format='PNG')
    return f'data:image/{image_format};base64,{base64.b64encode(buf.getvalue()).decode()}'


def request_body(query: Query, config: OpenAIConfig,
                 encode: Callable[[KeyedImage], str] | None = None) -> dict[str, Any]:
    """The JSON body of one chat-completions request for ``query``.

    ``encode`` turns an image into its data URL (default :func:`image_data_url` with the
    config's format); the backend passes its cache of recently encoded images.

    Raises:
        ConfigError: The task is empty or holds a reserved marker.
    """
    encode = encode or (lambda im: image_data_url(im, config.image_format, config.jpeg_quality))
    urls = [encode(im) for im in query.images]
    content = [item if item['type'] == 'text'
               else {'type': 'image_url', 'image_url': {'url': item['image']}}
               for item in user_content(query.task, urls, query.variant)]
    return {'model': config.model, 'messages': [{'role': 'user', 'content': content}],
            'temperature': config.temperature, 'max_tokens': config.max_tokens,
            'stop': [STOP_STRING]}


def answer_text(body: bytes) -> tuple[str, dict[str, float]]:
    """The answer text (``</score>`` re-appended when the server stopped on it) and usage.

    OpenAI servers drop the stop string from the text; vLLM says which one matched in
    ``stop_reason``, others only report ``finish_reason == 'stop'``, so an open ``<score>`` tag
    at a ``stop`` finish is taken as a stop on ``</score>``.

    Raises:
        _FinalError: The body is not a chat completion with a text answer.
    """
    try:
        data = json.loads(body)
        choice = data['choices'][0]
        text = choice['message']['content']
        if not isinstance(text, str):
            raise TypeError(f'content is {type(text).__name__}, not text')
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise _FinalError(f'malformed response ({type(exc).__name__}: {exc}): '
                          f'{body[:120]!r}') from exc
    open_tag = text.rfind('<score>') > text.rfind(STOP_STRING)
    stopped = choice.get('stop_reason') == STOP_STRING or (choice.get('finish_reason') == 'stop'
                                                            and open_tag)
    if stopped and not text.endswith(STOP_STRING):
        text += STOP_STRING
    usage = data.get('usage') or {}
    meta = {k: float(usage[k]) for k in ('prompt_tokens', 'completion_tokens')
            if isinstance(usage.get(k), (int, float))}
    return text, meta


class OpenAIBackend:
    """A ``GrmBackend`` over HTTP; ``generate`` runs the batch's requests concurrently.

    A stop request (or ``close``) is sticky: retries in their backoff end at once with an error,
    and every later ``generate`` raises ``BackendStoppedError``. A request already on the
    wire finishes or times out.
    """

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.model_id = config.model
        self._url = config.base_url.rstrip('/') + '/chat/completions'
        self._key = _Secret(os.environ.get(config.api_key_env, ''))
        if not self._key.reveal():
            logger.warning('environment variable %s is not set: requests go without an '
                           'Authorization header', config.api_key_env)
        self._stop = threading.Event()
        #: Set by a stop or a cancel: ends the backoff waits of the batch in flight.
        self._wake = threading.Event()
        self._urls: OrderedDict[tuple[ImageKey, tuple[int, ...]], str] = OrderedDict()
        self._urls_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix='grm-openai')

    def __repr__(self) -> str:
        return (f'OpenAIBackend(model={self.config.model!r}, base_url={self.config.base_url!r}, '
                f'api_key_env={self.config.api_key_env!r})')

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer each query; at most ``max_workers`` requests are in flight at once.

        Raises:
            BackendError: The backend was stopped or closed.
        """
        pool = self._pool
        if pool is None:
            raise BackendError('the backend is closed')
        if self._stop.is_set():
            raise BackendStoppedError('stopped')
        self._wake.clear()
        for query in queries:       # each distinct image once, before the requests share them
            for image in query.images:
                self._data_url(image)
        try:
            futures = [pool.submit(self._answer, q) for q in queries]
        except RuntimeError as exc:                      # close() shut the pool meanwhile
            raise BackendError('the backend is closed') from exc
        try:
            answers = [f.result() for f in futures]
        except CancelledError as exc:                    # closed while this batch waited
            raise BackendStoppedError('stopped') from exc
        if self._wake.is_set() and not self._stop.is_set():
            raise BackendStoppedError('cancelled')
        return answers

    def _answer(self, query: Query) -> Answer:
        t0 = time.perf_counter()
        try:
            payload = json.dumps(request_body(query, self.config, self._data_url)).encode()
        except GrmError as exc:
            return Answer('', error=f'{type(exc).__name__}: {exc}')
        delay = self.config.retry_delay_s
        attempt = 0
        while True:
            attempt += 1
            try:
                text, meta = answer_text(self._post(payload))
            except _FinalError as exc:
                return self._failed(exc, attempt, t0)
            except _TransientError as exc:
                if attempt == self.config.max_retries:
                    return self._failed(exc, attempt, t0)
                logger.warning('chat completion attempt %d/%d failed (%s); retrying in %.1f s',
                               attempt, self.config.max_retries, self._key.scrub(str(exc)),
                               delay)
                if self._wake.wait(delay):
                    return self._failed(_FinalError('stopped'), attempt, t0)
                delay *= 2
                continue
            meta.update(latency_s=time.perf_counter() - t0, attempts=float(attempt))
            return Answer(text, meta=meta)

    def _data_url(self, image: KeyedImage) -> str:
        """The image's data URL, encoded once per image key: consecutive steps share REF START,
        the goal and the BEFORE views, so a step encodes its 3 new views instead of 24 images."""
        key = (image.key, image.pixels.shape)
        with self._urls_lock:
            url = self._urls.get(key)
            if url is not None:
                self._urls.move_to_end(key)
                return url
        url = image_data_url(image, self.config.image_format, self.config.jpeg_quality)
        with self._urls_lock:
            self._urls[key] = url
            while len(self._urls) > URL_CACHE_ENTRIES:
                self._urls.popitem(last=False)
        return url

    def _failed(self, exc: Exception, attempts: int, t0: float) -> Answer:
        message = self._key.scrub(f'{exc} (after {attempts} attempt(s))')
        logger.error('chat completion failed: %s', message)
        return Answer('', error=message, meta={'latency_s': time.perf_counter() - t0,
                                               'attempts': float(attempts)})

    def _post(self, payload: bytes) -> bytes:
        """One attempt; classifies every failure as ``_TransientError`` or ``_FinalError``."""
        headers = {'Content-Type': 'application/json', 'Accept': 'application/json'}
        key = self._key.reveal()
        if key:
            headers['Authorization'] = f'Bearer {key}'
        request = urllib.request.Request(self._url, data=payload, headers=headers,
                                         method='POST')
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            # Masked before it is cut short, so no part of the key survives an echo.
            detail = self._key.scrub(exc.read().decode('utf-8', 'replace'))[:200]
            message = f'HTTP {exc.code} from {self._url}: {detail}'
            if exc.code in (408, 429) or exc.code >= 500:
                raise _TransientError(message) from exc
            raise _FinalError(message) from exc
        except (OSError, http.client.HTTPException) as exc:   # URLError, timeouts, resets
            reason = getattr(exc, 'reason', exc)
            raise _TransientError(f'{type(exc).__name__} on {self._url}: {reason}') from exc

    def request_stop(self) -> None:
        """End backoff waits now and refuse later batches (for shutdown)."""
        self._stop.set()
        self._wake.set()

    def cancel(self) -> None:
        """End the backoff waits of the batch in flight (it then raises); later batches run.
        A request already on the wire finishes or times out."""
        self._wake.set()

    def close(self) -> None:
        """Stop and wait for requests in flight to finish; queued ones are cancelled."""
        self._stop.set()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
