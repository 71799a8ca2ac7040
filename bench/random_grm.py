"""Random-weight GRMs of the real dimensions whose weights never reach the disk (benchmarks only).

A real-dimension checkpoint is 7-9 GB; writing one to measure a random model wastes minutes and
disk. Here the model directory holds what loading needs besides the weights (``config.json`` of
the real or a depth-truncated configuration, the real Qwen tokenizer, the processor files and the
chat template, from ``build_tiny_grm``) and a **header-only** ``model.safetensors``: the header
of the tensors the configuration has, the data a hole of a sparse file. So the project's own
sizing (``weights_bytes``, what ``model.max_gpu_memory_gib`` checks before loading) reads it as
it reads a real checkpoint, and :class:`RandomInitBackend` builds the weights on the device
from ``config.json`` instead of loading them.

Depth truncation keeps every per-layer shape: fewer text decoder layers and vision blocks, with
the attention pattern kept valid (a Qwen2.5-VL tower ends every 8 window-attention blocks with a
full-attention one; a Qwen3-VL tower taps its 3 deepstack levels at the same relative depths,
which feed the first 3 decoder layers, so at least 3 of each are needed).
"""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import Any

import torch

from robo_dopamine_ros.backends.architectures import model_class, model_config_class
from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
from robo_dopamine_ros.backends.weights_size import weights_bytes
from robo_dopamine_ros.models.real_dimensions import real_dimensions_config
from robo_dopamine_ros.models.tiny_grm import build_tiny_grm

#: torch dtype -> safetensors dtype name of the header.
_SAFETENSORS_DTYPES = {torch.bfloat16: 'BF16', torch.float16: 'F16', torch.float32: 'F32',
                       torch.int64: 'I64', torch.int32: 'I32', torch.bool: 'BOOL'}
DEEPSTACK_LEVELS = 3


class RandomInitBackend(TransformersBackend):
    """The transformers backend with random weights built on the device from ``config.json``."""

    def _load_model(self, source: str) -> Any:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source, local_files_only=True)
        with torch.device(self.device):
            model = model_class(self.architecture)._from_config(config, dtype=self.dtype)
        return model.eval()


def depths(config: dict[str, Any]) -> tuple[int, int]:
    """(text decoder layers, vision blocks) of a released-layout config."""
    text = config.get('text_config', config)
    return int(text['num_hidden_layers']), int(config['vision_config']['depth'])


def truncated_config(arch: str, text_layers: int | None = None,
                     vision_depth: int | None = None) -> dict[str, Any]:
    """``real_dimensions_config(arch)`` with fewer layers (``None`` keeps the full depth)."""
    config = real_dimensions_config(arch)
    full_text, full_vision = depths(config)
    text_layers = full_text if text_layers is None else text_layers
    vision_depth = full_vision if vision_depth is None else vision_depth
    if not (1 <= text_layers <= full_text and 1 <= vision_depth <= full_vision):
        raise ValueError(f'depths must be within 1..{full_text} text layers and '
                         f'1..{full_vision} vision blocks, got {text_layers}, {vision_depth}')
    vision = config['vision_config']
    vision['depth'] = vision_depth
    if 'text_config' in config:     # Qwen3-VL: deepstack taps at the real relative depths
        if min(text_layers, vision_depth) < DEEPSTACK_LEVELS:
            raise ValueError(f'Qwen3-VL needs at least {DEEPSTACK_LEVELS} text layers and '
                             'vision blocks: each deepstack level feeds one decoder layer')
        config['text_config']['num_hidden_layers'] = text_layers
        vision['deepstack_visual_indexes'] = [
            round((i + 1) * vision_depth / (DEEPSTACK_LEVELS + 1)) - 1
            for i in range(DEEPSTACK_LEVELS)]
    else:                           # Qwen2.5-VL: full attention closing every 8 blocks
        config['num_hidden_layers'] = text_layers
        vision['fullatt_block_indexes'] = (
            [i for i in range(vision_depth) if i % 8 == 7] or [vision_depth - 1])
    return config


def write_header_only(config: dict[str, Any], path: Path, dtype: torch.dtype) -> None:
    """A ``model.safetensors`` whose header lists the tensors ``config`` saves, data a hole.

    The model is built on the meta device (no memory); tied parameters count once, as
    ``save_pretrained`` writes them, and non-persistent buffers not at all.
    """
    arch = config['model_type']
    with torch.device('meta'):
        model = model_class(arch)._from_config(
            model_config_class(arch)(**copy.deepcopy(config)), dtype=dtype)
    saved = set(model.state_dict())
    tensors = [(n, t) for n, t in (*model.named_parameters(), *model.named_buffers())
               if n in saved]
    header: dict[str, Any] = {'__metadata__': {'format': 'pt'}}
    offset = 0
    for name, tensor in tensors:
        end = offset + tensor.numel() * tensor.element_size()
        header[name] = {'dtype': _SAFETENSORS_DTYPES[tensor.dtype],
                        'shape': list(tensor.shape), 'data_offsets': [offset, end]}
        offset = end
    raw = json.dumps(header).encode()
    raw += b' ' * (-len(raw) % 8)
    with path.open('wb') as f:
        f.write(struct.pack('<Q', len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)   # a hole: no data block is written


def random_grm_dir(out: Path, arch: str, *, tiny: bool = False, text_layers: int | None = None,
                   vision_depth: int | None = None,
                   dtype: torch.dtype = torch.bfloat16) -> Path:
    """A model directory for :class:`RandomInitBackend`: the tiny model as built (``tiny``), or
    the real (truncated) configuration with a header-only ``model.safetensors``."""
    path = build_tiny_grm(out / arch, vocab='qwen', architecture=arch)
    if tiny:
        return path
    config = truncated_config(arch, text_layers, vision_depth)
    config['torch_dtype'] = str(dtype).removeprefix('torch.')
    (path / 'config.json').write_text(json.dumps(config, indent=2))
    write_header_only(config, path / 'model.safetensors', dtype)
    return path


def sizing_gib(arch: str, dtype: torch.dtype, tmp: Path, text_layers: int | None = None,
               vision_depth: int | None = None) -> float:
    """``weights_bytes`` (the memory cap's sizing) of a configuration, in GiB, from its header."""
    folder = tmp / f'sizing-{arch}-{text_layers}-{vision_depth}'
    folder.mkdir(parents=True, exist_ok=True)
    write_header_only(truncated_config(arch, text_layers, vision_depth),
                      folder / 'model.safetensors', dtype)
    return weights_bytes(folder, dtype.itemsize) / 2**30
