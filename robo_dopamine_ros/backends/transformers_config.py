"""The transformers backend's settings, validated where they are parsed (no torch needed).

The node's parameter table and the command line build a :class:`TransformersConfig` on machines
without torch; the backend (:mod:`.transformers_backend`) imports torch only when it is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ConfigError
from ..core.images import PixelLimits
from .architectures import DEFAULT_MODEL
from .decoding import UPSTREAM_SAMPLING

DTYPES = ('auto', 'bfloat16', 'float16', 'float32')
_DEVICE_RE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


@dataclass(frozen=True, kw_only=True)
class TransformersConfig:
    """How to load and run the GRM with transformers.

    Attributes:
        model: Hub id or local checkpoint directory.
        device: ``'cuda:N'``, ``'cuda'``, ``'cpu'`` or ``'auto'`` (first GPU if there is one).
        dtype: ``'auto'`` is bfloat16 on a GPU that supports it (else float16) and float32 on
            CPU, where half precision is slow or unsupported on many hosts.
        upstream_sampling: Sample like upstream instead of greedy decoding.
        max_new_tokens: Token budget per answer; ``<score>+37.0%</score>`` is ~10 tokens.
        pixel_limits: Enforced on the processor, matching the engine's pre-resizing; the
            factor must be the checkpoint's (28 for Qwen2.5-VL, 32 for Qwen3-VL).
        trust_remote_code: Only for checkpoints that ship code; the GRM does not.
        local_files_only: Never download; a hub id must already be in the HF cache. A robot
            should not pull 7.5 GB at startup, so this is the default.
        attn_implementation: e.g. ``'sdpa'``, ``'eager'``, ``'flash_attention_2'``; ``None`` lets
            transformers choose.
        max_gpu_memory_gib: Cap on this process's memory on the GPU (shared-GPU robots); ``None``
            is no cap.
        vision_cache: Encode each distinct image once (:mod:`.vision_cache`): a fused step then
            runs the vision tower on its 3 new views instead of 24 images. Off only to measure
            or to rule the cache out; the answers are the same either way.
        vision_cache_entries: LRU cap on cached images; one episode uses 11 at a time, so the
            default holds the concurrent episodes a benchmark batches together.
        answer_prefill: Put the answer's common head (``<score``) into the prompt as token ids
            and stop at the first token after the number (:mod:`.prefill`); lossless exactly
            when the model would have written that head, so off unless measured.
        confidence: Also score every candidate hop by teacher forcing
            (:mod:`.candidate_scoring`): one more prompt forward and one over the candidates
            per query, so off unless wanted.
    """

    model: str = DEFAULT_MODEL
    device: str = 'cuda:0'
    dtype: str = 'auto'
    upstream_sampling: bool = False
    max_new_tokens: int = 16
    pixel_limits: PixelLimits = field(default_factory=PixelLimits)
    trust_remote_code: bool = False
    local_files_only: bool = True
    attn_implementation: str | None = None
    max_gpu_memory_gib: float | None = None
    vision_cache: bool = True
    vision_cache_entries: int = 256
    answer_prefill: bool = False
    confidence: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f'model must be a hub id or a directory, got {self.model!r}')
        if not _DEVICE_RE.match(self.device):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got "
                              f'{self.device!r}')
        if self.dtype not in DTYPES:
            raise ConfigError(f'dtype must be one of {DTYPES}, got {self.dtype!r}')
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ConfigError(f'max_new_tokens must be a positive int, got '
                              f'{self.max_new_tokens!r}')
        if not isinstance(self.pixel_limits, PixelLimits):
            raise ConfigError(f'pixel_limits must be a PixelLimits, got {self.pixel_limits!r}')
        if self.max_gpu_memory_gib is not None and not self.max_gpu_memory_gib > 0:
            raise ConfigError(f'max_gpu_memory_gib must be > 0, got {self.max_gpu_memory_gib!r}')
        if not isinstance(self.vision_cache_entries, int) or self.vision_cache_entries < 1:
            raise ConfigError(f'vision_cache_entries must be a positive int, got '
                              f'{self.vision_cache_entries!r}')

    def generation_kwargs(self) -> dict[str, Any]:
        """Every decoding parameter ``generate`` needs, so no checkpoint default leaks in."""
        kwargs: dict[str, Any] = {'max_new_tokens': self.max_new_tokens,
                                  'repetition_penalty': 1.0}
        if self.upstream_sampling:
            kwargs.update(do_sample=True, **UPSTREAM_SAMPLING)
        else:
            kwargs.update(do_sample=False, temperature=1.0, top_p=1.0, top_k=50)
        return kwargs
