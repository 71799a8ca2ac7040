"""A checkpoint's loaded size, read from its safetensors headers before any weight is loaded."""

from __future__ import annotations

import math
from pathlib import Path

from ..core.errors import ModelLoadError

#: safetensors dtypes of floating-point tensors: loaded as the model dtype, whatever they are.
_FLOAT_DTYPES = frozenset({'F16', 'BF16', 'F32', 'F64', 'F8_E4M3', 'F8_E5M2'})
_DTYPE_BYTES = {'BOOL': 1, 'U8': 1, 'I8': 1, 'I16': 2, 'U16': 2, 'I32': 4, 'U32': 4,
                'I64': 8, 'U64': 8}


def weights_bytes(directory: Path, float_bytes: int) -> int:
    """Bytes the checkpoint's tensors take once loaded, from the ``*.safetensors`` headers only.

    Floating-point tensors count ``float_bytes`` per element (the dtype they are loaded as);
    other tensors keep their own size. No tensor data is read (``safe_open`` maps the file and
    a slice reads nothing until indexed).

    Raises:
        ModelLoadError: No safetensors file, or a header that cannot be read.
    """
    from safetensors import SafetensorError, safe_open

    files = sorted(directory.glob('*.safetensors'))
    if not files:
        raise ModelLoadError(f'no *.safetensors weights in {str(directory)!r}')
    total = 0
    for file in files:
        try:
            with safe_open(file, 'np') as f:
                tensors = [(t.get_dtype(), t.get_shape()) for t in map(f.get_slice, f.keys())]
        except (OSError, SafetensorError) as exc:
            raise ModelLoadError(f'cannot read the safetensors header of {str(file)!r}: '
                                 f'{exc}') from exc
        for dtype, shape in tensors:
            size = float_bytes if dtype in _FLOAT_DTYPES else _DTYPE_BYTES.get(dtype, 8)
            total += math.prod(shape) * size
    return total
