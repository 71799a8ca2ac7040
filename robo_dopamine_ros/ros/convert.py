"""RGB arrays -> sensor_msgs images, for tests and tools (cameras, bags, the demo publisher).

The other direction (messages or serialized frames -> RGB) is ROS-free and lives in
pipeline/images.py, shared by the node and bag replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..core.errors import ImageError
from ..pipeline.images import CHANNELS

if TYPE_CHECKING:
    from sensor_msgs.msg import CompressedImage, Image


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
