"""Startup hook of ``.venv-vllm`` (scripts/setup_vllm.sh installs it with a ``.pth`` line, so it
also runs in the engine processes vLLM spawns).

PyPI's torchvision is CUDA-linked: beside a CPU torch its C library cannot load, and its import
then fails registering fake kernels for ``torchvision::nms``/``qnms``, whose schemas do not exist.
vLLM needs torchvision importable (transformers' Qwen2-VL image processor imports it at module
level) but not its C ops (vLLM decodes images with PIL). So, just before torchvision is first
imported, and only when its C library does not load, the two schemas are defined. The hook waits
for that import because importing torch at startup would cost every Python process seconds.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any

_SCHEMA = '(Tensor dets, Tensor scores, float iou_threshold) -> Tensor'
#: The library object that owns the defined schemas; it must outlive the import.
_library: Any = None


def _define_missing_ops() -> None:
    global _library
    import torch

    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return
    for path in Path(next(iter(spec.submodule_search_locations))).glob('_C*.so'):
        try:
            torch.ops.load_library(str(path))
            return
        except (OSError, RuntimeError):
            break
    _library = torch.library.Library('torchvision', 'DEF')
    for name in ('nms', 'qnms'):
        _library.define(name + _SCHEMA)


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs :func:`_define_missing_ops` once, then lets the normal finders import torchvision."""

    def find_spec(self, name: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name == 'torchvision':
            sys.meta_path.remove(self)
            _define_missing_ops()
        return None


sys.meta_path.insert(0, _BeforeTorchvision())
