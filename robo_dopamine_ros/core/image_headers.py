"""The decode budget: an image's declared size, read from its header before any pixel is decoded.

A 631-byte JPEG can declare 30000x30000 pixels; decoding it allocates gigabytes (or makes OpenCV
raise). Every image that enters the node — camera frames, goal images from a service or a file —
is therefore sized from its header first and refused above ``input.max_pixels``. The limit is
about memory, not the model: the model's own resize limits apply later, so 1080p and 4K cameras
pass the default (8192² ≈ 67 MP).

Only PNG and JPEG are parsed (the formats the node decodes); anything else has no readable size
and is refused.
"""

from __future__ import annotations

import struct

from .errors import ImageError

#: Default ``input.max_pixels``: 8192² ≈ 67 MP (a 4K frame is 8.3 MP).
DEFAULT_MAX_INPUT_PIXELS = 8192 * 8192

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7,
                       0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: Markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def encoded_size(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """``(width, height)`` that a PNG or JPEG byte string declares, without decoding it.

    Raises:
        ImageError: Neither PNG nor JPEG, or the header is cut off or declares no size.
    """
    buf = bytes(data[:8])
    if buf == _PNG_SIGNATURE:
        return _png_size(data)
    if buf[:2] == b'\xff\xd8':
        return _jpeg_size(data)
    raise ImageError('not a PNG or JPEG image (no readable header to size it from)')


def check_pixel_budget(width: int, height: int, max_pixels: int, what: str = 'image') -> None:
    """Refuse an image whose declared size exceeds the decode budget.

    Raises:
        ImageError: ``width * height > max_pixels`` (the message names both).
    """
    if width * height > max_pixels:
        raise ImageError(f'{what} declares {width}x{height} = {width * height} pixels, above '
                         f'the decode budget input.max_pixels = {max_pixels}; not decoded')


def _png_size(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    header = bytes(data[8:24])
    if len(header) < 16 or header[4:8] != b'IHDR':
        raise ImageError('PNG without an IHDR header')
    return struct.unpack('>II', header[8:16])


def _jpeg_size(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    view = memoryview(data)
    pos, end = 2, len(view)
    while pos + 4 <= end:
        if view[pos] != 0xFF:
            raise ImageError(f'JPEG header is corrupt at byte {pos}')
        marker = view[pos + 1]
        if marker == 0xFF:          # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        length = (view[pos + 2] << 8) | view[pos + 3]
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                break
            height = (view[pos + 5] << 8) | view[pos + 6]
            width = (view[pos + 7] << 8) | view[pos + 8]
            if height == 0 or width == 0:
                raise ImageError(f'JPEG declares a {width}x{height} frame (size not in header)')
            return width, height
        if length < 2:
            raise ImageError(f'JPEG header is corrupt at byte {pos}')
        pos += 2 + length
    raise ImageError('JPEG without a frame header (SOF) declaring its size')
