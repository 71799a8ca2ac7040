"""The GRM on HF transformers, with batched generation, for every released architecture.

This is the reference backend: it runs anywhere torch runs (CPU CI with the tiny models, a robot's
GPU with the real 3B). The checkpoint's ``config.json`` chooses the classes
(:mod:`.architectures`): ``Qwen2_5_VLForConditionalGeneration`` for GRM-3B,
``Qwen3VLForConditionalGeneration`` for a Qwen3-VL checkpoint (the GRM-2.0 previews, believed);
everything below (left padding, ``</score>`` stop, stop flag, dtype, vision cache) is the same for
both. torch and transformers are imported when a backend is built, so the config dataclass can be
parsed and validated on a machine without them.

Differences from upstream (vLLM, docs/upstream.md §2.2) that are deliberate:

* greedy decoding by default (``upstream_sampling=True`` restores temperature 0.1, top-p 0.9,
  top-k 50), so a reward is a function of the images, not of a random draw;
* ``max_new_tokens`` 16 and a ``</score>`` stop string instead of 1024 tokens, which bounds the
  known degenerate ``<score>-25.0.0.5.6.6…`` outputs (docs/upstream.md §3.4);
* the checkpoint's ``generation_config.json`` sampling values (e.g. Qwen's repetition penalty
  1.05) never apply: every decoding parameter is passed explicitly, as vLLM did upstream.

Optional, off by default: answer prefill and early stop (:mod:`.prefill`, ``answer_prefill``),
and the model's distribution over the score (:mod:`.candidate_scoring`, ``confidence``).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.confidence import ScoreDistribution
from ..core.errors import BackendError, BackendStoppedError, GrmError, ModelLoadError
from ..core.types import Answer, Query
from .architectures import model_class, read_checkpoint
from .candidate_scoring import candidate_ids, distributions, score_candidates
from .decoding import STOP_STRING
from .distinct_images import DistinctImages
from .prefill import finish_answer, head_ids, stop_strings
from .processor import load_processor, render_query_text
from .stop_criteria import Interrupt, stop_at_score
from .torch_device import resolve_device, resolve_dtype
from .transformers_config import TransformersConfig
from .vision_cache import VisionCache
from .weights_size import weights_bytes

if TYPE_CHECKING:
    from transformers import BatchFeature

logger = logging.getLogger(__name__)


class TransformersBackend:
    """A ``GrmBackend`` on one device, answering a batch of queries with one ``generate`` call.

    Thread safety: ``generate`` calls are serialised; ``request_stop`` may be called from any
    thread. A stop request is sticky: every later ``generate`` raises ``BackendStoppedError``
    (it exists for shutdown).
    """

    def __init__(self, config: TransformersConfig | None = None) -> None:
        """Load the processor and the model.

        Raises:
            ModelLoadError: The checkpoint is missing or of an unsupported architecture (the
                message names the type found and the supported ones), its resize factor is not
                ``pixel_limits``'s, the device does not exist, or transformers failed to load
                it; the message says what to do.
        """
        self.config = config or TransformersConfig()
        self.model_id = self.config.model
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise ModelLoadError(f'the transformers backend needs torch and transformers ({exc}); '
                                 'install them (see requirements-dev.txt)') from exc
        self.device = resolve_device(self.config.device)
        self.dtype = resolve_dtype(self.config.dtype, self.device)
        info = read_checkpoint(self.config.model, local_files_only=self.config.local_files_only,
                               trust_remote_code=self.config.trust_remote_code)
        self.architecture = info.model_type
        if info.factor != self.config.pixel_limits.factor:
            raise ModelLoadError(f'model {self.model_id!r} is a {info.model_type!r} checkpoint '
                                 f'(resize factor {info.factor!r}) but the pixel limits have '
                                 f'factor {self.config.pixel_limits.factor!r}: use its profile')
        local = Path(self.config.model).expanduser()
        source = str(local) if local.exists() else self.config.model
        self._check_weights_fit(local)
        self._apply_memory_cap()
        t0 = time.perf_counter()
        try:
            self.processor = load_processor(source, pixel_limits=self.config.pixel_limits,
                                            local_files_only=self.config.local_files_only,
                                            trust_remote_code=self.config.trust_remote_code,
                                            architecture=self.architecture)
        except Exception as exc:
            raise ModelLoadError(f'cannot load the processor of {self.model_id!r}: {exc}') from exc
        self.processor.image_processor = DistinctImages(self.processor.image_processor)
        self._stop_at_score = stop_at_score(self.processor.tokenizer)
        self._early_stop: Any = None         # built on first use: most backends never prefill
        self._common_head = head_ids(self.processor.tokenizer)
        self._candidates = (candidate_ids(self.processor.tokenizer, self._common_head)
                            if self.config.confidence else None)
        self.set_prefill(self.config.answer_prefill)
        self.model = self._load_model(source)
        self.vision_cache: VisionCache | None = None
        if self.config.vision_cache:
            self.vision_cache = VisionCache(self.config.vision_cache_entries)
            self.vision_cache.install(self.model)
        self._eos_ids = self._collect_eos_ids()
        logger.info('loaded %r (%s) on %s as %s in %.1f s', self.model_id, self.architecture,
                    self.device, self.dtype, time.perf_counter() - t0)

    # -- loading -------------------------------------------------------------------------------

    def _check_weights_fit(self, local: Path) -> None:
        """Refuse a checkpoint whose weights alone exceed ``max_gpu_memory_gib`` (before loading:
        a robot sharing its GPU must not find out by running out of memory)."""
        cap = self.config.max_gpu_memory_gib
        if cap is None:
            return
        if not local.is_dir():
            logger.warning('max_gpu_memory_gib: %r is not a local directory; the weights are '
                           'not sized before loading', self.config.model)
            return
        need = weights_bytes(local, self.dtype.itemsize) / 2**30
        if need > cap:
            raise ModelLoadError(f'the weights of {self.model_id!r} need {need:.3f} GiB as '
                                 f'{str(self.dtype).removeprefix("torch.")}, above '
                                 f'model.max_gpu_memory_gib = {cap:g} GiB')
        logger.info('weights: %.3f GiB of the %.3g GiB cap', need, cap)

    def _apply_memory_cap(self) -> None:
        import torch

        cap = self.config.max_gpu_memory_gib
        if cap is None or not self.device.startswith('cuda'):
            return
        index = int(self.device.split(':')[1])
        total = torch.cuda.get_device_properties(index).total_memory
        fraction = min(1.0, cap * 2**30 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, index)
        logger.info('capped GPU memory of %s at %.1f GiB (%.0f%%)', self.device, cap,
                    100 * fraction)

    def _load_model(self, source: str) -> Any:
        kwargs: dict[str, Any] = {'dtype': self.dtype, 'use_safetensors': True,
                                  'local_files_only': self.config.local_files_only,
                                  'trust_remote_code': self.config.trust_remote_code}
        if self.config.attn_implementation is not None:
            kwargs['attn_implementation'] = self.config.attn_implementation
        if importlib.util.find_spec('accelerate') is not None:
            kwargs['device_map'] = self.device  # straight onto the device, no host copy
        try:
            model = model_class(self.architecture).from_pretrained(source, **kwargs)
            model.to(self.device)
        except Exception as exc:
            raise ModelLoadError(f'cannot load the model weights of {self.model_id!r} '
                                 f'({type(exc).__name__}: {exc}); check the directory is a '
                                 f'complete download with model*.safetensors') from exc
        return model.eval()

    def _collect_eos_ids(self) -> list[int]:
        """The checkpoint's eos ids plus ``<|im_end|>``, which ends every assistant turn."""
        eos = self.model.generation_config.eos_token_id
        ids = list(eos) if isinstance(eos, (list, tuple)) else ([] if eos is None else [eos])
        im_end = self.processor.tokenizer.convert_tokens_to_ids('<|im_end|>')
        if im_end is not None and im_end not in ids:
            ids.append(im_end)
        return ids

    def set_prefill(self, on: bool, head: str | None = None) -> None:
        """Switch answer prefill and early stop (:mod:`.prefill`).

        Args:
            on: Prefill the head and stop at the first token after the number.
            head: Another head as text (``prefill-check``'s negative control); ``None`` is the
                ids every answer starts with (:func:`.prefill.head_ids`).
        """
        tokenizer = self.processor.tokenizer
        ids = self._common_head if head is None else tokenizer.encode(
            head, add_special_tokens=False)
        with self._lock:
            self.answer_prefill = on
            self._head_ids, self._head_text = ids, tokenizer.decode(ids)

    # -- inputs --------------------------------------------------------------------------------

    def render_text(self, query: Query) -> str:
        """The query's chat-template text (:func:`render_query_text`).

        Raises:
            ConfigError: The task is empty or contains a reserved marker.
        """
        return render_query_text(self.processor, query)

    def build_inputs(self, queries: Sequence[Query]) -> BatchFeature:
        """Tokenise and image-process a batch: left padded, images in query then slot order.

        Kept separate from ``generate`` so the exact tensors the model sees can be tested without
        running it. Tensors stay on the CPU.

        Raises:
            ConfigError: A query's task is invalid.
        """
        return self._encode([self.render_text(q) for q in queries], queries)

    def _encode(self, texts: list[str], queries: Sequence[Query]) -> BatchFeature:
        from PIL import Image

        pil: dict[int, Image.Image] = {}  # one object per pixel array: see DistinctImages
        for im in (im for q in queries for im in q.images):
            if id(im.pixels) not in pil:
                pil[id(im.pixels)] = Image.fromarray(np.ascontiguousarray(im.pixels))
        images = [pil[id(im.pixels)] for q in queries for im in q.images]
        return self.processor(text=texts, images=images, padding=True, return_tensors='pt')

    # -- generation ----------------------------------------------------------------------------

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer all queries with one batched ``generate``.

        A query whose prompt cannot be built gets ``Answer(text='', error=...)``; the rest still
        run. The answer text is the decoded new tokens only, special tokens removed.

        Raises:
            BackendError: The backend was stopped or closed, or generation failed for the batch
                (e.g. out of GPU memory).
        """
        with self._lock:
            if getattr(self, 'model', None) is None:
                raise BackendError('the backend is closed')
            if self._stop.is_set():
                raise BackendStoppedError('stopped')
            if self._cancel.is_set():   # cancelled before it began: this call, never erased
                self._cancel.clear()
                raise BackendStoppedError('cancelled')
            t0 = time.perf_counter()
            answers: list[Answer | None] = [None] * len(queries)
            texts: list[str] = []
            runnable: list[int] = []
            for i, query in enumerate(queries):
                try:
                    texts.append(self.render_text(query))
                    runnable.append(i)
                except GrmError as exc:
                    answers[i] = Answer(text='', error=f'{type(exc).__name__}: {exc}')
            if runnable:
                batch = [queries[i] for i in runnable]
                for i, answer in zip(runnable, self._run(texts, batch, t0), strict=True):
                    answers[i] = answer
            return [a for a in answers if a is not None]

    def _run(self, texts: list[str], queries: Sequence[Query], t0: float) -> list[Answer]:
        import torch
        from transformers import StoppingCriteriaList

        try:
            enc = self._encode(texts, queries)
        except Exception as exc:
            raise BackendError(f'cannot build the inputs of a batch of {len(queries)}: '
                               f'{exc}') from exc
        prefill = self.answer_prefill
        plain, enc = enc, self._append_head(enc, self._head_ids) if prefill else enc
        prompt_len = enc['input_ids'].shape[1]
        interrupt = Interrupt((self._stop, self._cancel))
        confidence: list[ScoreDistribution | None] = [None] * len(queries)
        try:
            with torch.inference_mode(), self._vision_hints(queries):
                if self._candidates is not None:
                    confidence = self._confidence(plain)
                out = self.model.generate(
                    **enc.to(self.device), **self.config.generation_kwargs(),
                    eos_token_id=self._eos_ids,
                    pad_token_id=self.processor.tokenizer.pad_token_id,
                    stopping_criteria=StoppingCriteriaList([self._stops(prefill), interrupt]))
        except Exception as exc:
            if self.device.startswith('cuda'):
                torch.cuda.empty_cache()
            raise BackendError(f'generation failed for a batch of {len(queries)} '
                               f'({type(exc).__name__}: {exc})') from exc
        if interrupt.stopped:
            self._cancel.clear()        # the cancel was for this call
            raise BackendStoppedError('stopped' if self._stop.is_set() else 'cancelled')
        new = out[:, prompt_len:].cpu()
        texts_out = self.processor.tokenizer.batch_decode(new, skip_special_tokens=True)
        latency = time.perf_counter() - t0
        prompt_tokens = enc['attention_mask'].sum(dim=1).tolist()
        answers = []
        for row, text in enumerate(texts_out):
            meta = {'latency_s': latency, 'batch_size': float(len(queries)),
                    'prompt_tokens': float(prompt_tokens[row]),
                    'new_tokens': float(self._count_new(new[row].tolist())),
                    'stop_string': float(STOP_STRING in text)}
            if prefill:
                text, completed = finish_answer(self._head_text, text)
                meta.update(prefill_tokens=float(len(self._head_ids)),
                            early_stop=float(completed), stop_string=float(completed))
            answers.append(Answer(text=text, meta=meta, distribution=confidence[row]))
        return answers

    def _confidence(self, enc: BatchFeature) -> list[ScoreDistribution | None]:
        """The distribution over the score of every query (:mod:`.candidate_scoring`)."""
        common = self._append_head(enc, self._common_head).to(self.device)
        return list(distributions(score_candidates(
            self.model, common, self._candidates, self.processor.tokenizer.pad_token_id)))

    def _stops(self, prefill: bool) -> Any:
        """The stop-string criterion: ``</score>``, or with the early stop's strings too."""
        if not prefill:
            return self._stop_at_score
        if self._early_stop is None:
            self._early_stop = stop_at_score(self.processor.tokenizer, stop_strings(True))
        return self._early_stop

    @staticmethod
    def _append_head(enc: BatchFeature, head_ids: list[int]) -> BatchFeature:
        """A copy of the batch with ``head_ids`` after every (left-padded) prompt: as ids, so
        the boundaries are the tokenizer's own (:func:`.prefill.head_ids`)."""
        import torch
        from transformers import BatchFeature

        ids = enc['input_ids']
        head = torch.tensor(head_ids, dtype=ids.dtype).expand(ids.shape[0], -1)
        out = dict(enc)
        for key, value in enc.items():
            if isinstance(value, torch.Tensor) and value.shape == ids.shape:
                tail = head if key == 'input_ids' else (
                    torch.ones_like(head) if key == 'attention_mask'
                    else torch.zeros_like(head))
                out[key] = torch.cat([value, tail.to(value.dtype)], dim=1)
        return BatchFeature(out)

    def _vision_hints(self, queries: Sequence[Query]) -> contextlib.AbstractContextManager[None]:
        """The batch's image hints for the vision cache (a no-op context without one)."""
        if self.vision_cache is None:
            return contextlib.nullcontext()
        images = [im for q in queries for im in q.images]
        return self.vision_cache.batch(frozenset(im.key.episode for im in images),
                                       [id(im.pixels) for im in images])

    def reset_cache(self) -> None:
        """Forget every cached image embedding (a new episode is also detected on its own)."""
        if self.vision_cache is not None:
            self.vision_cache.reset()

    def _count_new(self, row: list[int]) -> int:
        """Generated tokens before the first end or padding token.

        The pad token (``<|endoftext|>``) is also an end token, so an end token the model emitted
        and the padding after a row stopped at ``</score>`` look alike; neither is counted.
        """
        ends = {*self._eos_ids, self.processor.tokenizer.pad_token_id}
        return next((n for n, token in enumerate(row) if token in ends), len(row))

    # -- lifecycle -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Make a running ``generate`` return within one decode step (it then raises)."""
        self._stop.set()

    def cancel(self) -> None:
        """Make the running ``generate`` return within one decode step, or the next one, if
        none runs yet, refuse at once (per call: the flag is cleared only by the call it
        stopped, so a cancel landing just before ``generate`` is not lost)."""
        self._cancel.set()

    def close(self) -> None:
        """Drop the model and processor and return cached GPU memory to the driver."""
        self._stop.set()
        with self._lock:
            self.model = None
            self.processor = None
            self.vision_cache = None
            gc.collect()
            if self.device.startswith('cuda'):
                import torch

                torch.cuda.empty_cache()

    def __enter__(self) -> TransformersBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
