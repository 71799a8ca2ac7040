"""Where and in what precision a model runs: a device name and a dtype name resolved for torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import ModelLoadError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str) -> str:
    """``'auto'`` -> ``'cuda:0'`` if CUDA is usable, else ``'cpu'``; ``'cuda'`` -> ``'cuda:0'``."""
    import torch

    if device == 'auto':
        return 'cuda:0' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda':
        device = 'cuda:0'
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ModelLoadError(f'device {device!r} asked for, but torch sees no CUDA GPU '
                                 f'(torch {torch.__version__}); use device=cpu or auto')
        index = int(device.split(':')[1])
        if index >= torch.cuda.device_count():
            raise ModelLoadError(f'device {device!r} asked for, but only '
                                 f'{torch.cuda.device_count()} CUDA device(s) exist')
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """The torch dtype for ``dtype`` on a resolved ``device`` (``TransformersConfig.dtype``)."""
    import torch

    if dtype == 'auto':
        if not device.startswith('cuda'):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {'bfloat16': torch.bfloat16, 'float16': torch.float16, 'float32': torch.float32}[dtype]
