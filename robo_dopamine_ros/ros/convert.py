"""sensor_msgs images <-> RGB uint8 arrays, as pure functions.

cv_bridge cannot be installed from the package registries (docs/ros2-from-pypi.md) and the node
needs only the common 8-bit encodings, so this is a small numpy version. It honours ``step`` (row
padding) and refuses, with an :class:`ImageError`, anything it cannot convert exactly: a wrong
colour order or a shifted row would silently change the GRM's answer.

The readers are duck-typed: any object with the ``sensor_msgs`` fields works (``encoding``,
``height``, ``width``, ``step``, ``data`` for a raw image; ``format``, ``data`` for a compressed
one), so bag replay decodes rosbags messages with exactly the node's code, without rclpy. Only
the builders (``rgb_to_image``, ``rgb_to_compressed``, for tests and tools) import rclpy types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..core.errors import ImageError
from ..core.image_headers import DEFAULT_MAX_INPUT_PIXELS, check_pixel_budget, encoded_size

if TYPE_CHECKING:
    from sensor_msgs.msg import CompressedImage, Image

#: Supported raw encodings and their channel counts (all 8 bits per channel).
CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
#: Substrings of ``CompressedImage.format`` that OpenCV decodes here ('' = detect from the data).
COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')


def is_compressed(msg: Any) -> bool:
    """A ``CompressedImage`` (it has ``format``) rather than a raw ``Image``."""
    return hasattr(msg, 'format')


def check(msg: Any, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> None:
    """Cheap checks done on every received frame, before the pixels are touched.

    A compressed image is sized from its header against the decode budget ``max_pixels``
    (core/image_headers.py), so a small payload declaring a huge image is never decoded.

    Raises:
        ImageError: Unsupported encoding or format, a raw buffer of the wrong size, or a size
            above the budget. A corrupt compressed payload is only found by :func:`to_rgb`.
    """
    if is_compressed(msg):
        _check_compressed(msg, max_pixels)
    else:
        _raw_layout(msg, max_pixels)


def to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Convert a raw or compressed image message to a contiguous RGB uint8 HxWx3 array."""
    if is_compressed(msg):
        return compressed_to_rgb(msg, max_pixels)
    return image_to_rgb(msg, max_pixels)


class ViewError(ImageError):
    """One view of a synchronized set failed to convert; ``index`` says which camera."""

    def __init__(self, index: int, error: ImageError) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


def to_views(msgs: Sequence[Any], roles: Sequence[str],
             max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> dict[str, np.ndarray]:
    """Convert one synchronized set (one message per camera role) to RGB views by role.

    Shared by the node and bag replay so both drop a set for the same reasons.

    Raises:
        ViewError: a view is not convertible (the first one, with its camera index).
    """
    views: dict[str, np.ndarray] = {}
    for index, (role, msg) in enumerate(zip(roles, msgs, strict=True)):
        try:
            views[role] = to_rgb(msg, max_pixels)
        except ImageError as err:
            raise ViewError(index, err) from err
    return views


def image_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` (see :data:`CHANNELS`) to RGB uint8 HxWx3.

    Raises:
        ImageError: Unsupported encoding, empty image, more pixels than ``max_pixels``, ``step``
            shorter than a row, or a data buffer whose size is not ``step * height``.
    """
    channels = _raw_layout(msg, max_pixels)
    h, w = msg.height, msg.width
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(h, msg.step)
    pixels = rows[:, :w * channels].reshape(h, w, channels)
    encoding = msg.encoding
    if encoding == 'mono8':
        pixels = np.repeat(pixels, 3, axis=2)
    elif encoding.startswith('bgr'):
        pixels = pixels[:, :, 2::-1]
    else:
        pixels = pixels[:, :, :3]
    return np.ascontiguousarray(pixels)


def compressed_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Decode a jpeg/png ``sensor_msgs/CompressedImage`` to RGB uint8 HxWx3.

    image_transport compresses colour images as BGR (``'rgb8; jpeg compressed bgr8'``) and
    OpenCV decodes to BGR, so the channels are always reversed after decoding.

    Raises:
        ImageError: Unsupported format, empty or undecodable data, or a declared size above
            ``max_pixels`` (checked before decoding).
    """
    _check_compressed(msg, max_pixels)
    try:
        bgr = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as err:    # OpenCV's own limits and corrupt streams raise, not return None
        raise ImageError(f'cannot decode the {msg.format!r} compressed image '
                         f'({len(msg.data)} bytes): {err}') from None
    if bgr is None:
        raise ImageError(f'cannot decode the {msg.format!r} compressed image '
                         f'({len(msg.data)} bytes)')
    return np.ascontiguousarray(bgr[:, :, ::-1])


def rgb_to_image(pixels: np.ndarray, encoding: str = 'rgb8', *, stamp_ns: int = 0,
                 frame_id: str = '', padding: int = 0) -> Image:
    """Build a ``sensor_msgs/Image`` from RGB HxWx3 (or gray HxW for ``mono8``) uint8 pixels.

    For tests and tools; ``padding`` bytes (zeros) end every row, as some drivers send.

    Raises:
        ImageError: Unsupported encoding or pixels of the wrong shape or dtype.
    """
    from sensor_msgs.msg import Image

    from .messages import ns_to_time

    if encoding not in CHANNELS:
        raise ImageError(f'unsupported encoding {encoding!r}; supported: {sorted(CHANNELS)}')
    want_ndim = 2 if encoding == 'mono8' else 3
    if pixels.dtype != np.uint8 or pixels.ndim != want_ndim or (
            want_ndim == 3 and pixels.shape[2] != 3):
        raise ImageError(f'{encoding} needs uint8 {"HxW" if want_ndim == 2 else "HxWx3"} '
                         f'pixels, got {pixels.dtype} {pixels.shape}')
    h, w = pixels.shape[:2]
    planes = pixels.reshape(h, w, 1) if want_ndim == 2 else pixels
    if encoding.startswith('bgr'):
        planes = planes[:, :, ::-1]
    if encoding.endswith('a8'):
        planes = np.concatenate([planes, np.full((h, w, 1), 255, np.uint8)], axis=2)
    rows = planes.reshape(h, w * CHANNELS[encoding])
    if padding:
        rows = np.concatenate([rows, np.zeros((h, padding), np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=rows.shape[1])
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.data = np.ascontiguousarray(rows).tobytes()
    return msg


def rgb_to_compressed(pixels: np.ndarray, fmt: str = 'png', *, stamp_ns: int = 0,
                      frame_id: str = '', quality: int = 90) -> CompressedImage:
    """Encode RGB HxWx3 uint8 pixels as a ``jpeg`` or ``png`` ``CompressedImage`` (tests, tools).

    Raises:
        ImageError: Unsupported format or encoding failure.
    """
    from sensor_msgs.msg import CompressedImage

    from .messages import ns_to_time

    if fmt not in ('jpeg', 'png'):
        raise ImageError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == 'jpeg' else []
    ok, buf = cv2.imencode(f'.{fmt}', np.ascontiguousarray(pixels[:, :, ::-1]), params)
    if not ok:
        raise ImageError(f'cannot encode a {pixels.shape} image as {fmt}')
    msg = CompressedImage(format=f'rgb8; {fmt} compressed bgr8')
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.data = buf.tobytes()
    return msg


def _raw_layout(msg: Any, max_pixels: int) -> int:
    """Validate a raw image's geometry and size budget; returns its channel count."""
    channels = CHANNELS.get(msg.encoding)
    if channels is None:
        raise ImageError(f'unsupported encoding {msg.encoding!r}; supported: {sorted(CHANNELS)}')
    h, w, step = msg.height, msg.width, msg.step
    if h < 1 or w < 1:
        raise ImageError(f'empty image: {h}x{w}')
    check_pixel_budget(w, h, max_pixels)
    if step < w * channels:
        raise ImageError(f'step {step} is shorter than a {w}px {msg.encoding} row '
                         f'({w * channels} bytes)')
    if len(msg.data) != step * h:
        raise ImageError(f'{len(msg.data)} data bytes, expected step * height = {step * h}')
    return channels


def _check_compressed(msg: Any, max_pixels: int) -> None:
    fmt = msg.format.lower()
    if fmt and not any(f in fmt for f in COMPRESSED_FORMATS):
        raise ImageError(f'unsupported compressed format {msg.format!r}; supported: jpeg, png')
    if not len(msg.data):
        raise ImageError(f'empty {msg.format!r} compressed image')
    width, height = encoded_size(msg.data)
    check_pixel_budget(width, height, max_pixels)
