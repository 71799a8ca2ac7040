"""A GRM backend that answers a query it has seen before from a cache keyed by image digests.

Learning curves replay the same states many times (a tabular learner on
:class:`.LongHorizonPickPlaceEnv` sees one image per state), and the demo GRM on two CPU cores
costs seconds per step. :class:`CachedBackend` sits between the engine and any backend of the
registry: the key of a query is a digest of the model's fingerprint (id or weights digest),
task, mode, prompt variant and the pixels (shape and bytes) of its 8 images in slot order, so a
cached answer is the answer the same model gave to the same prompt. It is valid only for a
deterministic backend (greedy decoding, as the transformers backend does);
test/test_rl_learning.py proves cached rewards identical to live ones on a subset. Failed
answers are never cached. ``save``/``load`` keep the cache in a JSON file between benchmark runs
(refused when the fingerprint differs).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError
from ..core.types import Answer, GrmBackend, Query

_SEEN_IMAGES = 64       # image digests remembered by array identity


def image_digest(pixels: np.ndarray) -> bytes:
    """The digest of one image: shape and bytes."""
    h = hashlib.sha256(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.digest()


def query_digest(fingerprint: str, query: Query,
                 digest: Callable[[np.ndarray], bytes] = image_digest) -> str:
    """The cache key of a query (module docstring)."""
    h = hashlib.sha256()
    for part in (fingerprint, query.task, query.mode.value, query.variant.value):
        h.update(part.encode())
        h.update(b'\0')
    for image in query.images:
        h.update(digest(image.pixels))
    return h.hexdigest()


class CachedBackend:
    """Memoises ``backend``'s answers by :func:`query_digest` (module docstring).

    ``fingerprint`` identifies the model's weights (default: the backend's model id; give a
    digest of the weights where a path may hold a retrained model). The image digests of the
    last few pixel arrays are remembered by identity (an engine passes the same REF START, goal
    and BEFORE arrays step after step), so each new image is hashed once.
    """

    def __init__(self, backend: GrmBackend, fingerprint: str | None = None) -> None:
        self.backend = backend
        self.model_id = backend.model_id
        self.fingerprint = fingerprint or backend.model_id
        self.answers: dict[str, str] = {}
        self.hits = 0
        self.misses = 0
        self._seen: OrderedDict[int, tuple[np.ndarray, bytes]] = OrderedDict()

    def _digest(self, pixels: np.ndarray) -> bytes:
        seen = self._seen.get(id(pixels))
        if seen is not None and seen[0] is pixels:     # the array is held here: id not reused
            self._seen.move_to_end(id(pixels))
            return seen[1]
        digest = image_digest(pixels)
        self._seen[id(pixels)] = (pixels, digest)
        if len(self._seen) > _SEEN_IMAGES:
            self._seen.popitem(last=False)
        return digest

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        keys = [query_digest(self.fingerprint, q, self._digest) for q in queries]
        todo: dict[str, Query] = {k: q for k, q in zip(keys, queries, strict=True)
                                  if k not in self.answers}
        fresh = dict(zip(todo, self.backend.generate(list(todo.values())) if todo else [],
                         strict=True))
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        for key, answer in fresh.items():
            if answer.error is None:
                self.answers[key] = answer.text
        return [fresh[k] if k in fresh else Answer(self.answers[k]) for k in keys]

    def save(self, path: str | Path) -> None:
        """Write the cache (model id and answers) as JSON."""
        Path(path).write_text(json.dumps({'fingerprint': self.fingerprint,
                                          'answers': self.answers}, sort_keys=True))

    def load(self, path: str | Path) -> int:
        """Add the answers of a saved cache of the same model; returns how many it held."""
        data = json.loads(Path(path).read_text())
        if data.get('fingerprint') != self.fingerprint:
            raise ConfigError(f'cache {path} is for model {data.get("fingerprint")!r}, not '
                              f'{self.fingerprint!r}')
        self.answers.update(data['answers'])
        return len(data['answers'])

    def request_stop(self) -> None:
        self.backend.request_stop()

    def cancel(self) -> None:
        self.backend.cancel()

    def close(self) -> None:
        self.backend.close()
