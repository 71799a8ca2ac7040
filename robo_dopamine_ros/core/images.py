"""Image preparation: any supported input -> RGB uint8 -> the checkpoint's ``smart_resize`` size.

Resizing here (not only in a processor) makes every backend — transformers, vLLM, an HTTP API —
see the same pixels, and lets the pixel limits of a checkpoint profile apply everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import ConfigError, ImageError

#: Qwen2.5-VL: 14 px patches merged 2x2 -> one visual token per 28x28 block (Qwen3-VL: 16 px
#: patches, factor 32). The factor of a checkpoint travels in its ``PixelLimits``.
RESIZE_FACTOR = 28
MAX_ASPECT_RATIO = 200


@dataclass(frozen=True)
class PixelLimits:
    """A checkpoint's image geometry: pixel bounds after resizing and the resize factor.

    Defaults are GRM-3B's (upstream 16*28^2 .. 320*240, Qwen2.5-VL factor 28). The factor is the
    side of the square one visual token covers (patch size x merge size); it is carried here so
    every place that resizes takes it from the checkpoint profile with the bounds.
    """

    min_pixels: int = 12544
    max_pixels: int = 76800
    factor: int = RESIZE_FACTOR

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ConfigError(f'need 0 < min_pixels <= max_pixels, got {self.min_pixels!r}, '
                              f'{self.max_pixels!r}')
        if not isinstance(self.factor, int) or self.factor < 1:
            raise ConfigError(f'resize factor must be a positive int, got {self.factor!r}')


def smart_resize(height: int, width: int, factor: int = RESIZE_FACTOR,
                 min_pixels: int = 12544, max_pixels: int = 76800) -> tuple[int, int]:
    """The Qwen-VL target size: sides multiples of ``factor``, area within the pixel bounds.

    Same arithmetic as the Qwen2-VL image processor, so pre-resized images pass through unchanged.
    """
    if height < factor or width < factor:
        raise ImageError(f'image {height}x{width} is smaller than the {factor}px minimum side')
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ImageError(f'aspect ratio of {height}x{width} exceeds {MAX_ASPECT_RATIO}')
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def visual_tokens(height: int, width: int, limits: PixelLimits = PixelLimits()) -> int:
    """Number of ``<|image_pad|>`` tokens the model spends on an image of this size."""
    h, w = resize_to(height, width, limits)
    return (h // limits.factor) * (w // limits.factor)


def resize_to(height: int, width: int, limits: PixelLimits) -> tuple[int, int]:
    """:func:`smart_resize` with a checkpoint's geometry."""
    return smart_resize(height, width, factor=limits.factor, min_pixels=limits.min_pixels,
                        max_pixels=limits.max_pixels)


def to_rgb(image: np.ndarray | Image.Image) -> np.ndarray:
    """Convert a PIL image or an RGB/gray/RGBA numpy array to a contiguous RGB uint8 HxWx3 array.

    Numpy input is taken as RGB(A) channel order: converting from BGR is the caller's job, where
    the encoding is known (ROS messages, OpenCV frames).
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert('RGB'), dtype=np.uint8).copy()
    if not isinstance(image, np.ndarray):
        raise ImageError(f'expected a numpy array or PIL image, got {type(image).__name__}')
    a = image
    if a.dtype != np.uint8:
        raise ImageError(f'expected uint8 pixels, got dtype {a.dtype}')
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise ImageError(f'expected HxW, HxWx1, HxWx3 or HxWx4, got shape {a.shape}')
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f'empty image of shape {a.shape}')
    return np.ascontiguousarray(a)


def prepare(image: np.ndarray | Image.Image, limits: PixelLimits = PixelLimits()) -> np.ndarray:
    """RGB-convert and resize to the model's size (bicubic, as the Qwen processor resamples)."""
    rgb = to_rgb(image)
    h, w = rgb.shape[:2]
    th, tw = resize_to(h, w, limits)
    if (th, tw) == (h, w):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((tw, th), Image.BICUBIC), dtype=np.uint8)


def blank_goal(size: int = 224, value: int = 128) -> np.ndarray:
    """The uniform grey goal image used for checkpoints trained without a goal (GRM-2.0)."""
    return np.full((size, size, 3), value, dtype=np.uint8)
