"""How many CPU threads in-process inference may use (``model.cpu_threads``).

torch's intra-op pool and OpenCV's pool each default to one thread per core, so a CPU GRM next
to the robot's control stack would take every core. Both pools are process-wide, so the bound is
set once per configure, before the model loads. vLLM's CPU engine binds its own OpenMP threads
(``VLLM_CPU_OMP_THREADS_BIND``), which this does not change; on a GPU it barely uses the CPU.
"""

from __future__ import annotations

import os

#: Backends whose model runs in this process on torch.
TORCH_BACKENDS = frozenset({'transformers', 'vllm'})


def default_cpu_threads(cores: int | None = None) -> int:
    """Half the cores this process may run on (at least one): the rest stay with the robot."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (
            os.cpu_count() or 1)
    return max(1, cores // 2)


def bound_cpu_threads(threads: int, backend: str) -> int:
    """Bound OpenCV's pool and, for an in-process torch backend, torch's intra-op pool.

    Args:
        threads: The bound; 0 = :func:`default_cpu_threads`.
        backend: ``model.backend`` (torch is imported only for a backend that uses it).

    Returns:
        The bound applied.
    """
    import cv2

    n = threads or default_cpu_threads()
    cv2.setNumThreads(n)
    if backend in TORCH_BACKENDS:
        import torch

        torch.set_num_threads(n)
    return n
