"""A vision-embedding cache at the GRM's vision tower, so each distinct image is encoded once.

Why: a fused step asks three questions of 8 images each (24 vision-tower passes), yet only the 3
current views are new; REF START, the goal, the START views and the previous views were encoded
at earlier steps (spec: issue 8). The tower is the part of a step whose work repeats most.

How: :class:`VisionCache` replaces ``get_image_features`` on the model's ``Qwen2_5_VLModel`` or
``Qwen3VLModel`` instance (``model.model``, which owns ``model.visual``). The replacement splits
``pixel_values`` into images (``t*h*w`` rows each, from ``image_grid_thw``), digests each image's
rows, runs the original method once on the images it has not seen (each distinct one once) and
returns the per-image embeddings in the original order. A Qwen3-VL tower also returns
"deepstack" features (one tensor per tapped vision block, added to the first decoder layers'
visual positions); they are cached with the pooled embedding of their image and returned in the
same per-level, per-image layout. Everything after it is untouched: the placeholder scatter, the
M-RoPE positions (computed from ``input_ids`` and the grids, never from the embeddings), prefill
and decoding see exactly the tensors they would see without the cache.

Identity is the digest of the preprocessed tensor the tower would see (dtype, grid and bytes),
never an ``ImageKey``: two images that preprocess alike share an entry, and a key reused with
other pixels cannot return a stale embedding. The keys serve only as hints: images of one batch
that are the same array are digested once, and a batch sharing no episode with the previous one
clears the cache (a new episode does not reuse its predecessor's views). Memory is bounded by an
LRU cap on entries, which also covers concurrent episodes batched together.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Keyword arguments of the language model's forward that reach ``get_image_features`` in some
#: transformers versions (5.17 passes ``use_cache``) and do not change the tower's output.
LANGUAGE_MODEL_KWARGS = frozenset({'use_cache'})


class VisionCache:
    """Per-image vision-tower outputs of one model, by pixel digest, least recently used first.

    The entries are guarded by a lock (``reset`` may come from another thread); the batch hints
    rely on the backend serialising its ``generate`` calls.

    Attributes:
        max_entries: LRU cap; a batch's images are kept for that batch even above it.
        hits: Images (counting repeats within a batch) served without the tower, since creation.
        misses: Images the tower encoded, since creation.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f'max_entries must be >= 1, got {max_entries!r}')
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        #: digest -> (pooled embedding, deepstack features per level; empty for Qwen2.5-VL)
        self._entries: OrderedDict[bytes, tuple[torch.Tensor, tuple[torch.Tensor, ...]]] = \
            OrderedDict()
        self._output_class: type | None = None
        self._episodes: frozenset[str] = frozenset()
        self._identities: Sequence[int] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def install(self, model: Any) -> None:
        """Route ``model``'s image features through this cache (``model.model`` instance only).

        Patching the instance, not the class, leaves every other model in the process as it is.
        """
        inner = model.model
        original = inner.get_image_features
        if hasattr(inner.visual, 'deepstack_merger_list'):
            from transformers.models.qwen3_vl.modeling_qwen3_vl import (
                BaseModelOutputWithDeepstackFeatures,
            )

            self._output_class = BaseModelOutputWithDeepstackFeatures

        def cached_image_features(pixel_values: torch.Tensor,
                                  image_grid_thw: torch.LongTensor | None = None,
                                  **kwargs: Any) -> Any:
            return self._features(original, pixel_values, image_grid_thw, **kwargs)

        inner.get_image_features = cached_image_features

    def reset(self) -> None:
        """Drop every entry (e.g. on a new episode, or to measure without reuse)."""
        with self._lock:
            self._entries.clear()
            self._episodes = frozenset()

    @contextmanager
    def batch(self, episodes: frozenset[str], identities: Sequence[int]) -> Iterator[None]:
        """Hints for one ``generate`` call.

        Args:
            episodes: The episode ids of the batch's images. A batch sharing none with the
                previous batch starts a new episode, so the cache is cleared first.
            identities: One value per image in processor order, equal for images that are the
                same pixel array (``id(KeyedImage.pixels)``); such images are digested once.
        """
        if not episodes & self._episodes:
            self.reset()
        self._episodes = episodes
        self._identities = identities
        try:
            yield
        finally:
            self._identities = None

    # -- the replacement -------------------------------------------------------------------

    def _features(self, original: Callable[..., Any], pixel_values: torch.Tensor,
                  image_grid_thw: torch.LongTensor | None, return_dict: bool = True,
                  **kwargs: Any) -> Any:
        """``get_image_features`` with each image's embeddings looked up or encoded.

        Extra keyword arguments (precomputed ``cu_seqlens``, output capture) describe the whole
        batch and cannot be cut per image, so such a call goes to the original untouched; those
        of the language model's forward that some transformers versions pass along (``use_cache``
        in 5.17) do not concern the tower and are dropped.
        """
        import torch

        kwargs = {k: v for k, v in kwargs.items() if k not in LANGUAGE_MODEL_KWARGS}
        if kwargs or image_grid_thw is None:
            return original(pixel_values, image_grid_thw, return_dict=return_dict, **kwargs)
        rows = image_grid_thw.prod(-1).tolist()
        digests = self._digests(pixel_values, image_grid_thw, rows)
        starts = [sum(rows[:i]) for i in range(len(rows))]
        with self._lock:
            found = {d: self._entries[d] for d in digests if d in self._entries}
            todo: list[int] = []
            seen = set(found)
            for i, d in enumerate(digests):
                if d not in seen:
                    seen.add(d)
                    todo.append(i)
            if todo:
                pixels = torch.cat([pixel_values[starts[i]:starts[i] + rows[i]] for i in todo])
                out = original(pixels, image_grid_thw[todo], return_dict=True)
                levels = getattr(out, 'deepstack_features', None) or ()
                for j, i in enumerate(todo):  # clones: a view would pin the batch tensor
                    found[digests[i]] = (out.pooler_output[j].clone(),
                                         tuple(level[j].clone() for level in levels))
            self.misses += len(todo)
            self.hits += len(digests) - len(todo)
            for d in digests:
                self._entries[d] = found[d]
                self._entries.move_to_end(d)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return self._output(tuple(found[d] for d in digests), return_dict)

    def _output(self, entries: tuple[tuple[torch.Tensor, tuple[torch.Tensor, ...]], ...],
                return_dict: bool) -> Any:
        """The tower's output object for ``entries``: per-image tuples, as the model splits."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        pooled = tuple(entry[0] for entry in entries)
        if self._output_class is None:
            result = BaseModelOutputWithPooling(pooler_output=pooled)
        else:
            depth = len(entries[0][1]) if entries else 0
            result = self._output_class(
                pooler_output=pooled,
                deepstack_features=[tuple(entry[1][k] for entry in entries)
                                    for k in range(depth)])
        return result if return_dict else result.to_tuple()

    def _digests(self, pixel_values: torch.Tensor, grid: torch.Tensor,
                 rows: list[int]) -> list[bytes]:
        """SHA-1 of each image's dtype, grid and preprocessed rows (on the host).

        SHA-1 runs at ~2 GB/s on one core: ~1 ms for a 224x308 image's 1.7 MB, against ~2.4 ms
        for the tiny tower to encode it on a CPU (and far more for the real one). With the
        batch's identity hints each distinct image is hashed once.
        """
        import torch

        dtype = str(pixel_values.dtype).encode()
        host = pixel_values.detach().cpu().contiguous().view(torch.uint8)  # any dtype as bytes
        identities = self._identities
        if identities is not None and len(identities) != len(rows):
            logger.debug('ignoring %d image hints for %d images', len(identities), len(rows))
            identities = None
        known: dict[int, bytes] = {}
        digests: list[bytes] = []
        start = 0
        for i, n in enumerate(rows):
            ident = identities[i] if identities is not None else None
            if ident is not None and ident in known:
                digests.append(known[ident])
            else:
                h = hashlib.sha1(dtype, usedforsecurity=False)
                h.update(bytes(str(grid[i].tolist()), 'ascii'))
                h.update(host[start:start + n].numpy().data)
                digests.append(h.digest())
                if ident is not None:
                    known[ident] = digests[-1]
            start += n
        return digests
