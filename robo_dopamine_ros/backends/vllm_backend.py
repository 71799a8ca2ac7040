"""The GRM on vLLM (a CUDA GPU, or vLLM's CPU build), the runtime upstream's inference and
benchmark scripts use (docs/upstream.md §2.2).

vLLM is an optional dependency with its own torch pin, so it is imported only when a
backend is built; without it the error says how to install it. As upstream, the prompt is the
processor's chat template rendered as text (:func:`processor.render_query_text`, the same text
the transformers backend feeds) and the 8 images travel as ``multi_modal_data`` in slot order.
Settings, and where they differ from upstream on purpose:

* ``enable_prefix_caching=True`` and ``limit_mm_per_prompt={'image': 8}`` as upstream. Prefix
  caching reuses full KV blocks whose tokens, and the hashes of the images inside them, match a
  cached prompt's from its start. The slot order (``SLOT_ROLES``) already puts what a step's
  queries share first: system line, prompt head with the task, REF START, REF END and the text
  up to the first BEFORE image (about 300 of 1400 tokens at 224x308; the same for every query
  of an episode, so it is prefilled once per episode). Within a step nothing after it can be
  shared: every query differs from its first BEFORE image on, and the long closing instructions
  follow the AFTER images (``test_vision_cache.py`` pins this arrangement); across steps the
  forward and backward queries repeat their BEFORE images too. vLLM reuses whole KV blocks only
  (128 tokens on CPU in vLLM 0.32; ``block_size``): on the demo GRM's ~200-token prompts 40 % of
  an episode's prompt tokens came from the cache (51 % with 32-token blocks), for no clear step
  time gain at that size on a CPU (bench/results/vllm_cpu.md);
* ``mm_processor_kwargs`` carries the min/max pixel limits (12544..76800 by default) in the form
  the checkpoint's image processor takes, read from the processor itself
  (:func:`vllm_engine.pixel_kwargs`): ``size={'shortest_edge', 'longest_edge'}`` or
  ``min_pixels``/``max_pixels`` (Qwen3-VL's stock bounds, 65536..16.7M, would bound nothing).
  Upstream set them on a local processor object vLLM never used (docs/upstream.md §2.2
  caveat). The engine already resizes every image to these limits at the architecture's
  factor, so vLLM's processor leaves them as they are;
* greedy decoding by default (``upstream_sampling=True``: temperature 0.1, top-p 0.9, top-k 50),
  ``stop=['</score>']`` kept in the output and ``max_tokens`` 16 instead of 1024, which bounds
  the known runaway ``<score>-25.0.0.5.6…`` answers (issue #3).

* ``model.device`` and ``model.max_gpu_memory_gib`` are checked against the installed vLLM build
  and mapped onto it (:mod:`vllm_engine`); ``close()`` shuts the engine processes down.

Usage (vLLM installed in its own venv: ``.venv-vllm`` from ``make setup`` on CPU, docs/setup.md;
``pip install vllm`` on a CUDA machine)::

    from robo_dopamine_ros.backends.factory import make_backend
    backend = make_backend('vllm', model='/models/Robo-Dopamine-GRM-3B')
    # or: robo-dopamine bench --backend vllm --model /models/Robo-Dopamine-GRM-3B ...

``max_model_len`` 8192 leaves room for 8 images of at most 76800 px (≈ 100 visual tokens each)
and the ≈ 800-token prompt; keep it small, since vLLM reserves memory for the worst case.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..core.errors import BackendError, BackendStoppedError, ConfigError, GrmError, ModelLoadError
from ..core.images import PixelLimits
from ..core.profiles import check_architecture, geometry
from ..core.prompt import NUM_IMAGES, check_task
from ..core.types import Answer, Query
from .architectures import DEFAULT_MODEL, read_checkpoint
from .decoding import STOP_STRING, UPSTREAM_SAMPLING
from .prefill import ANSWER_HEAD, finish_answer, stop_strings
from .processor import load_processor, render_query_text
from .vllm_engine import (
    GIB,
    cached_tokens,
    check_device,
    engine_shutdown,
    memory_kwargs,
    pixel_kwargs,
)

logger = logging.getLogger(__name__)
#: How long close() waits for each engine process to end after its shutdown (a hang guard).
_ENGINE_EXIT_S = 30.0



@dataclass(frozen=True, kw_only=True)
class VllmConfig:
    """How to load and run the GRM with vLLM.

    Attributes:
        model: Local checkpoint directory (or a hub id already in the HF cache).
        max_model_len: Context length vLLM plans memory for.
        device: ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:0'``; checked against the platform
            of the installed vLLM build (:func:`vllm_engine.check_device`).
        max_memory_gib: The node's ``model.max_gpu_memory_gib``: on CPU the KV cache's size,
            on CUDA a fraction of the GPU (:func:`vllm_engine.memory_kwargs`); None: vLLM's
            defaults.
        pixel_limits: Passed to vLLM's processor as ``mm_processor_kwargs``.
        architecture: The checkpoint's ``model_type`` (it must agree with ``config.json``).
        max_tokens: Answer budget; ``<score>+37.0%</score>`` is about 10 tokens.
        upstream_sampling: Sample like upstream instead of greedy decoding.
        dtype: vLLM ``dtype`` (``'auto'`` is the checkpoint's bf16).
        tensor_parallel_size: GPUs to shard over.
        trust_remote_code: Only for checkpoints that ship code; the GRM does not.
        seed: vLLM's sampling seed (matters only with ``upstream_sampling``).
        answer_prefill: Append the answer head (``<score``) to the prompt and stop at the first
            token after the number (:mod:`.prefill`); as text, which the tokenizer splits as
            the model writes it (test_prefill checks the boundary).
        prefix_caching: vLLM's automatic prefix caching (on as upstream; off only to measure
            what it saves, bench/vllm_cpu.py).
        block_size: Tokens per KV-cache block (None: the build's default, 128 on CPU in vLLM
            0.32). The prefix cache reuses whole blocks only, so a prompt shorter than a few
            blocks shares little (bench/results/vllm_cpu.md).
    """

    model: str = DEFAULT_MODEL
    max_model_len: int = 8192
    device: str = 'auto'
    max_memory_gib: float | None = None
    pixel_limits: PixelLimits = field(default_factory=PixelLimits)
    architecture: str = 'qwen2_5_vl'
    max_tokens: int = 16
    upstream_sampling: bool = False
    dtype: str = 'auto'
    tensor_parallel_size: int = 1
    trust_remote_code: bool = False
    seed: int = 0
    answer_prefill: bool = False
    prefix_caching: bool = True
    block_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f'model must be a checkpoint directory or hub id, got '
                              f'{self.model!r}')
        check_device(self.device)
        if self.max_memory_gib is not None and not self.max_memory_gib > 0:
            raise ConfigError(f'max_memory_gib must be > 0, got {self.max_memory_gib!r}')
        check_architecture(self.architecture, 'vllm config')
        if geometry(self.architecture).factor != self.pixel_limits.factor:
            raise ConfigError(f'pixel_limits factor {self.pixel_limits.factor!r} is not the '
                              f'{self.architecture!r} factor')
        for name in ('max_model_len', 'max_tokens', 'tensor_parallel_size', 'block_size'):
            value = getattr(self, name)
            if name == 'block_size' and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f'{name} must be an integer >= 1, got {value!r}')

    def llm_kwargs(self, *, platform: str, processor_kwargs: dict[str, Any],
                   device_total_gib: float | None = None) -> dict[str, Any]:
        """Keyword arguments of ``vllm.LLM`` on ``platform`` (``'cpu'``/``'cuda'``), with the
        pixel bounds in the processor's form (:func:`vllm_engine.pixel_kwargs`).

        Raises:
            ConfigError: ``device`` or ``max_memory_gib`` cannot be honoured there.
        """
        check_device(self.device, platform)
        return {
            'model': self.model, 'max_model_len': self.max_model_len,
            'limit_mm_per_prompt': {'image': NUM_IMAGES},
            'enable_prefix_caching': self.prefix_caching,
            'mm_processor_kwargs': processor_kwargs,
            'dtype': self.dtype, 'tensor_parallel_size': self.tensor_parallel_size,
            'trust_remote_code': self.trust_remote_code, 'seed': self.seed,
            **memory_kwargs(self.max_memory_gib, platform, device_total_gib),
            **({} if self.block_size is None else {'block_size': self.block_size}),
        }

    def sampling_kwargs(self, prefill: bool = False) -> dict[str, Any]:
        """Keyword arguments of ``vllm.SamplingParams``: every decoding setting, explicitly;
        ``prefill`` adds the early stop's strings."""
        kwargs: dict[str, Any] = {'max_tokens': self.max_tokens, 'stop': stop_strings(prefill),
                                  'include_stop_str_in_output': True}
        if self.upstream_sampling:
            kwargs.update(UPSTREAM_SAMPLING)
        else:
            kwargs['temperature'] = 0.0
        return kwargs


def build_requests(queries: Sequence[Query], render_text: Callable[[Query], str],
                   head: str = '') -> list[dict[str, Any]]:
    """vLLM prompts for ``queries``: chat-template text (plus the prefilled answer ``head``)
    and the 8 PIL images in slot order.

    Pure (no vLLM needed), so tests check the exact request; ``render_text`` is the processor's
    template (:func:`processor.render_query_text`) or a stand-in.
    """
    return [{'prompt': render_text(q) + head,
             'multi_modal_data': {'image': [Image.fromarray(np.ascontiguousarray(im.pixels))
                                            for im in q.images]}}
            for q in queries]


def _device_total_gib(platform: str) -> float | None:
    """The first visible GPU's memory in GiB (the base of a CUDA memory cap), None on CPU."""
    if platform != 'cuda':
        return None
    import torch

    return torch.cuda.get_device_properties(0).total_memory / GIB


def answer_of(generated: str, meta: dict[str, float], head: str) -> Answer:
    """The answer of one completion: with a prefilled ``head``, the whole answer
    (:func:`.prefill.finish_answer`) and whether the early stop closed it."""
    if not head:
        return Answer(generated, meta=meta)
    text, completed = finish_answer(head, generated)
    return Answer(text, meta={**meta, 'early_stop': float(completed),
                              'stop_string': float(completed or meta['stop_string'])})


class VllmBackend:
    """A ``GrmBackend`` on vLLM; a batch is one ``LLM.generate`` call.

    ``LLM`` is not thread safe, so calls are serialised. A stop request is sticky and takes
    effect before the next batch (vLLM's offline ``generate`` cannot be interrupted).
    """

    def __init__(self, config: VllmConfig | None = None) -> None:
        """Load the processor (for the chat template) and the engine.

        Raises:
            ModelLoadError: vLLM is not installed, or the checkpoint cannot be loaded.
        """
        self.config = config or VllmConfig()
        self.model_id = self.config.model
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._engine_procs: set[Any] = set()
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError as exc:
            raise ModelLoadError(
                f'the vllm backend needs vLLM ({exc}): install it in its own environment '
                '(pip install vllm on a CUDA machine; on CPU the .venv-vllm of `make setup`, '
                'docs/setup.md), or use the transformers backend, or serve the model with '
                '`vllm serve` and use the openai backend') from exc
        platform = str(current_platform.device_type)
        t0 = time.perf_counter()
        found = read_checkpoint(self.config.model,
                                trust_remote_code=self.config.trust_remote_code).model_type
        if found != self.config.architecture:
            raise ModelLoadError(f'model {self.model_id!r} is a {found!r} checkpoint, but the '
                                 f'vllm config says {self.config.architecture!r}: use its '
                                 f'profile')
        try:
            self.processor = load_processor(self.config.model,
                                            pixel_limits=self.config.pixel_limits,
                                            trust_remote_code=self.config.trust_remote_code,
                                            architecture=found)
        except Exception as exc:   # a broken checkpoint: many types
            raise ModelLoadError(f'cannot load the processor of {self.model_id!r} '
                                 f'({type(exc).__name__}: {exc})') from exc
        kwargs = self.config.llm_kwargs(
            platform=platform, device_total_gib=_device_total_gib(platform),
            processor_kwargs=pixel_kwargs(self.processor.image_processor,
                                          self.config.pixel_limits.min_pixels,
                                          self.config.pixel_limits.max_pixels))
        try:
            before = set(multiprocessing.active_children())
            self.llm = vllm.LLM(**kwargs)
            # The engine's processes (the engine core; its workers are its own), for close().
            self._engine_procs = set(multiprocessing.active_children()) - before
        except Exception as exc:   # vLLM raises many types; all mean "could not load"
            raise ModelLoadError(f'cannot load {self.model_id!r} with vLLM '
                                 f'({type(exc).__name__}: {exc})') from exc
        if engine_shutdown(self.llm) is None:
            logger.warning('vLLM %s has no engine shutdown this backend knows: close() will '
                           'not free the engine until the process exits', vllm.__version__)
        self.sampling_params = {on: vllm.SamplingParams(**self.config.sampling_kwargs(on))
                                for on in (False, True)}
        self.answer_prefill = self.config.answer_prefill
        self.answer_head = ANSWER_HEAD
        logger.info('loaded %r with vLLM %s (%s) in %.1f s', self.model_id, vllm.__version__,
                    platform, time.perf_counter() - t0)

    def render_text(self, query: Query) -> str:
        """The query's prompt text (:func:`render_query_text`)."""
        return render_query_text(self.processor, query)

    def set_prefill(self, on: bool, head: str | None = None) -> None:
        """Switch answer prefill (``head``: another head, e.g. ``prefill-check``'s negative
        control; ``None``: the common head)."""
        with self._lock:
            self.answer_prefill, self.answer_head = on, ANSWER_HEAD if head is None else head

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer all queries with one ``LLM.generate``; an invalid task fails only its query.

        Raises:
            BackendError: The backend was stopped or closed, or vLLM failed for the batch.
        """
        with self._lock:
            if getattr(self, 'llm', None) is None:
                raise BackendError('the backend is closed')
            if self._stop.is_set():
                raise BackendStoppedError('stopped')
            t0 = time.perf_counter()
            answers: list[Answer | None] = [None] * len(queries)
            runnable: list[int] = []
            for i, query in enumerate(queries):
                try:
                    check_task(query.task)
                    runnable.append(i)
                except GrmError as exc:
                    answers[i] = Answer('', error=f'{type(exc).__name__}: {exc}')
            if runnable:
                prefill = self.answer_prefill
                head = self.answer_head if prefill else ''
                requests = build_requests([queries[i] for i in runnable], self.render_text, head)
                try:
                    outputs = self.llm.generate(requests, self.sampling_params[prefill],
                                                use_tqdm=False)
                except Exception as exc:   # CUDA OOM, engine death: the batch as a whole
                    raise BackendError(f'vLLM failed for a batch of {len(requests)} '
                                       f'({type(exc).__name__}: {exc})') from exc
                latency = time.perf_counter() - t0
                for i, out in zip(runnable, outputs, strict=True):
                    completion = out.outputs[0]
                    meta = {'latency_s': latency, 'batch_size': float(len(requests)),
                            'prompt_tokens': float(len(out.prompt_token_ids or ())),
                            'new_tokens': float(len(completion.token_ids)),
                            'stop_string': float(completion.stop_reason == STOP_STRING)}
                    cached = cached_tokens(out)
                    if cached is not None:      # the prompt tokens the prefix cache served
                        meta['cached_tokens'] = float(cached)
                    answers[i] = answer_of(completion.text, meta, head)
            return [a for a in answers if a is not None]

    def request_stop(self) -> None:
        """Refuse every later batch (a running ``generate`` finishes)."""
        self._stop.set()

    def cancel(self) -> None:
        """Nothing to do: a running ``LLM.generate`` is not interrupted (this backend does not
        abort requests inside the engine); the caller discards its result. The bound is one
        batch of ``max_tokens`` (``model.max_new_tokens``) tokens per answer."""

    def close(self) -> None:
        """Shut the engine down: its processes end and free their memory (dropping the ``LLM``
        object frees nothing: the engine core is another process)."""
        self._stop.set()
        with self._lock:
            llm, self.llm, self.processor = getattr(self, 'llm', None), None, None
            if llm is None:
                return
            shutdown = engine_shutdown(llm)
            if shutdown is not None:
                shutdown()
            # vLLM 0.32 kills an engine core that outlives its grace period without waiting
            # for it: wait (bounded) so that close() returns with its memory freed and no
            # zombie left in the node's process tree.
            for proc in self._engine_procs:
                proc.join(timeout=_ENGINE_EXIT_S)
                if proc.is_alive():
                    logger.warning('vLLM engine process %s (pid %s) still runs %.0f s after '
                                   'its shutdown', proc.name, proc.pid, _ENGINE_EXIT_S)
            self._engine_procs = set()
            del llm
            gc.collect()
            try:
                import torch
            except ImportError:
                return
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def __enter__(self) -> VllmBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
