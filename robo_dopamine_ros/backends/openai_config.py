"""The OpenAI-compatible backend's settings: where the server is and how to talk to it.

Validated where they are parsed, without httpx or a connection (:mod:`.openai_backend` runs them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import ConfigError
from .openai_wire import sampling_fields

DEFAULT_BASE_URL = 'https://api.openai.com/v1'
DEFAULT_KEY_ENV = 'OPENAI_API_KEY'
IMAGE_FORMATS = ('jpeg', 'png')


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
        max_workers: Requests in flight (and connections kept) at most, across all callers.
        timeout_s: Read and write timeout of one attempt: how long the server may compute.
        connect_timeout_s: Timeout of opening a connection (cut to ``timeout_s`` if longer).
        deadline_s: Time from a ``generate`` call to each of its answers, attempts, backoff and
            a wait for a free slot included; ``None`` is twice ``timeout_s``.
        max_retries: Attempts per query in all, retryable failures only (upstream: 5).
        retry_delay_s: Wait before the second attempt; doubles after each, jittered by up to
            half (upstream: 2 s, no jitter).
        max_tokens: Answer budget; ``<score>+37.0%</score>`` is about 10 tokens.
        upstream_sampling: Upstream's sampling (temperature 0.1, top-p 0.9) instead of greedy
            decoding, which makes a reward a function of the images.
        vllm_sampling: Also send vLLM's sampling fields (top-k, min-p, repetition penalty), so
            the served checkpoint's ``generation_config.json`` cannot change decoding; off for
            APIs that refuse unknown fields.
        answer_prefill: Send the answer head as a partial assistant turn and stop early
            (:mod:`.openai_wire`); vLLM's server continues it, others may answer whole.
    """

    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key_env: str = DEFAULT_KEY_ENV
    image_format: str = 'jpeg'
    jpeg_quality: int = 95
    max_workers: int = 8
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    deadline_s: float | None = None
    max_retries: int = 5
    retry_delay_s: float = 2.0
    max_tokens: int = 32
    upstream_sampling: bool = False
    vllm_sampling: bool = True
    answer_prefill: bool = False

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
        for name in ('timeout_s', 'connect_timeout_s', 'deadline_s'):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f'{name} must be > 0, got {value!r}')
        if not self.retry_delay_s >= 0:
            raise ConfigError(f'retry_delay_s must be >= 0, got {self.retry_delay_s!r}')

    @property
    def sampling(self) -> dict[str, float | int]:
        """Every decoding field of a request (:func:`.openai_wire.sampling_fields`)."""
        return sampling_fields(upstream=self.upstream_sampling, vllm=self.vllm_sampling)

    @property
    def deadline(self) -> float:
        """The deadline per reading in seconds: ``deadline_s`` or twice ``timeout_s``."""
        return 2 * self.timeout_s if self.deadline_s is None else self.deadline_s
