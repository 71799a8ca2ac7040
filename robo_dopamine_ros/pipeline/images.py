"""Camera images -> RGB: sensor_msgs messages, or the same messages still serialized (CDR).

cv_bridge has no PyPI wheel (see docs/setup.md) and the node
needs only the common 8-bit encodings, so this is a small numpy version. It honours ``step`` (row
padding) and refuses, with an :class:`ImageError`, anything it cannot convert exactly: a wrong
colour order or a shifted row would silently change the GRM's answer.

Why serialized input: the node subscribes to cameras raw (serialized), because most frames are
never scored; :func:`parse_frame` reads the few fields the frame check and the stamp rule need
(stamp, frame id, encoding or format, height, width, step, the data's length) from the CDR bytes,
and pixels are touched only for sampled sets, on the worker thread. Bag replay reads the very
same bytes from the bag, so both run one parser and one decoder.

The decoders are duck-typed: any object with the ``sensor_msgs`` fields works (``encoding``,
``height``, ``width``, ``step``, ``data`` for a raw image; ``format``, ``data`` for a compressed
one): a parsed :class:`RawImage`/:class:`CompressedFrame`, an rclpy message or a rosbags one.
Pure Python + numpy + OpenCV: no rclpy.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any

import cv2
import numpy as np

from ..core.errors import ImageError
from ..core.image_headers import DEFAULT_MAX_INPUT_PIXELS, check_pixel_budget, encoded_size

_NS_PER_S = 1_000_000_000
#: CDR encapsulation identifiers (the first two bytes of a serialized message).
_CDR_BE, _CDR_LE = b'\x00\x00', b'\x00\x01'


@dataclass(frozen=True, slots=True)
class RawImage:
    """A ``sensor_msgs/Image`` read from its serialized bytes; ``data`` is a view, not a copy."""

    stamp_ns: int
    frame_id: str
    encoding: str
    height: int
    width: int
    step: int
    data: memoryview


@dataclass(frozen=True, slots=True)
class CompressedFrame:
    """A ``sensor_msgs/CompressedImage`` read from its serialized bytes (``data`` a view)."""

    stamp_ns: int
    frame_id: str
    format: str
    data: memoryview


Frame = RawImage | CompressedFrame


class _Cdr:
    """A bounds-checked reader of plain (XCDR1) CDR, as ROS 2 serializes messages."""

    def __init__(self, buf: bytes | memoryview) -> None:
        self.view = memoryview(buf).cast('B')
        if len(self.view) < 4 or bytes(self.view[:2]) not in (_CDR_BE, _CDR_LE):
            raise ImageError('not a serialized ROS message (no CDR encapsulation header)')
        self.order = '<' if bytes(self.view[:2]) == _CDR_LE else '>'
        self.pos = 4

    def _take(self, fmt: str, size: int) -> tuple[Any, ...]:
        self.pos += -(self.pos - 4) % size      # alignment counts from after the header
        end = self.pos + struct.calcsize(fmt)
        if end > len(self.view):
            raise ImageError(f'serialized message truncated at byte {self.pos} of '
                             f'{len(self.view)}')
        values = struct.unpack_from(self.order + fmt, self.view, self.pos)
        self.pos = end
        return values

    def uint32(self) -> int:
        return self._take('I', 4)[0]

    def stamp_ns(self) -> int:
        sec, nanosec = self._take('iI', 4)
        return sec * _NS_PER_S + nanosec

    def octets(self) -> memoryview:
        size = self.uint32()
        if size > len(self.view) - self.pos:
            raise ImageError(f'serialized message declares {size} bytes at byte {self.pos}, '
                             f'but only {len(self.view) - self.pos} follow')
        out = self.view[self.pos:self.pos + size]
        self.pos += size
        return out

    def string(self) -> str:
        raw = bytes(self.octets())
        try:
            return raw.rstrip(b'\x00').decode('utf-8')
        except UnicodeDecodeError:
            raise ImageError(f'serialized message holds a non-UTF-8 string {raw[:40]!r}') from None

    def octet(self) -> int:
        return self._take('B', 1)[0]


def parse_frame(buf: bytes | memoryview, compressed: bool) -> Frame:
    """Read a serialized ``sensor_msgs/Image`` (or ``CompressedImage``) without its pixels.

    Raises:
        ImageError: Not CDR, truncated, or a length field pointing past the end.
    """
    cdr = _Cdr(buf)
    stamp = cdr.stamp_ns()
    frame_id = cdr.string()
    if compressed:
        fmt = cdr.string()
        return CompressedFrame(stamp, frame_id, fmt, cdr.octets())
    height, width = cdr.uint32(), cdr.uint32()
    encoding = cdr.string()
    cdr.octet()         # is_bigendian: irrelevant for 8-bit encodings
    step = cdr.uint32()
    return RawImage(stamp, frame_id, encoding, height, width, step, cdr.octets())


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
             max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
             pool: Executor | None = None) -> dict[str, np.ndarray]:
    """Convert one synchronized set (one message per camera role) to RGB views by role.

    Shared by the node and bag replay so both drop a set for the same reasons. With ``pool``
    the views are converted concurrently: OpenCV's decoders and NumPy's copies release the GIL,
    so a set takes about as long as its slowest view, not the sum of its views.

    Raises:
        ViewError: a view is not convertible (the first one in camera order, with its index).
    """
    if len(msgs) != len(roles):
        raise ValueError(f'{len(msgs)} messages for {len(roles)} camera roles')
    convert = partial(_view, max_pixels=max_pixels)
    concurrent = pool is not None and len(msgs) > 1
    views = (pool.map if concurrent else map)(convert, range(len(msgs)), msgs)
    return dict(zip(roles, views, strict=True))


def _view(index: int, msg: Any, max_pixels: int) -> np.ndarray:
    try:
        return to_rgb(msg, max_pixels)
    except ImageError as err:
        raise ViewError(index, err) from err


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
