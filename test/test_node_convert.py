"""Image message conversion (ros/convert.py): every encoding, row padding, compressed formats,
a set's views decoded side by side, and the errors for what cannot be converted exactly. Pure
functions: no DDS."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from robo_dopamine_ros.core.errors import ImageError
from robo_dopamine_ros.pipeline import images
from robo_dopamine_ros.ros import convert
from robo_dopamine_ros.ros.messages import time_to_ns

# One pixel row of a 2x2 image: red, green / blue, white.
RGB = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)


def raw(encoding: str, data: bytes, h: int = 2, w: int = 2, step: int | None = None) -> Image:
    channels = images.CHANNELS.get(encoding, 3)
    return Image(height=h, width=w, encoding=encoding, step=w * channels if step is None else step,
                 data=data)


@pytest.mark.parametrize(('encoding', 'data'), [
    ('rgb8', bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])),
    ('bgr8', bytes([0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255])),
    ('rgba8', bytes([255, 0, 0, 9, 0, 255, 0, 9, 0, 0, 255, 9, 255, 255, 255, 9])),
    ('bgra8', bytes([0, 0, 255, 9, 0, 255, 0, 9, 255, 0, 0, 9, 255, 255, 255, 9])),
])
def test_convert_color_encodings_give_rgb(encoding: str, data: bytes) -> None:
    out = images.image_to_rgb(raw(encoding, data))
    assert out.dtype == np.uint8 and out.flags['C_CONTIGUOUS']
    np.testing.assert_array_equal(out, RGB)


def test_convert_mono8_repeats_gray_into_three_channels() -> None:
    out = images.image_to_rgb(raw('mono8', bytes([0, 10, 200, 255])))
    np.testing.assert_array_equal(out[:, :, 0], [[0, 10], [200, 255]])
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_convert_honours_step_row_padding() -> None:
    # rgb8, 2 px per row + 3 padding bytes that must never show up as pixels.
    data = bytes([255, 0, 0, 0, 255, 0, 7, 7, 7, 0, 0, 255, 255, 255, 255, 7, 7, 7])
    np.testing.assert_array_equal(images.image_to_rgb(raw('rgb8', data, step=9)), RGB)


@pytest.mark.parametrize('encoding', sorted(images.CHANNELS))
@pytest.mark.parametrize('padding', [0, 5])
def test_convert_round_trips_every_encoding(encoding: str, padding: int) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    pixels = rgb[:, :, 0] if encoding == 'mono8' else rgb
    msg = convert.rgb_to_image(pixels, encoding, stamp_ns=1_700_000_000_123_456_789,
                               frame_id='cam', padding=padding)
    assert msg.step == 7 * images.CHANNELS[encoding] + padding
    assert time_to_ns(msg.header.stamp) == 1_700_000_000_123_456_789
    want = np.repeat(pixels[:, :, None], 3, axis=2) if encoding == 'mono8' else rgb
    np.testing.assert_array_equal(images.to_rgb(msg), want)


@pytest.mark.parametrize(('msg', 'match'), [
    (raw('16UC1', bytes(8)), "unsupported encoding '16UC1'"),
    (raw('rgb8', bytes(11)), r'11 data bytes, expected step \* height = 12'),
    (raw('rgb8', bytes(10), step=5), 'step 5 is shorter than a 2px rgb8 row'),
    (raw('rgb8', b'', h=0), 'empty image: 0x2'),
])
def test_convert_rejects_raw_images_it_cannot_convert(msg: Image, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        images.check(msg)
    with pytest.raises(ImageError, match=match):
        images.to_rgb(msg)


def test_convert_png_is_lossless_and_rgb() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    msg = convert.rgb_to_compressed(rgb, 'png')
    assert msg.format == 'rgb8; png compressed bgr8'
    np.testing.assert_array_equal(images.to_rgb(msg), rgb)


def test_convert_jpeg_decodes_like_opencv_in_rgb_order() -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 250           # pure red survives jpeg closely
    msg = convert.rgb_to_compressed(rgb, 'jpeg', quality=95)
    out = images.to_rgb(msg)
    expected = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    np.testing.assert_array_equal(out, expected)
    assert out[..., 0].min() > 240 and out[..., 2].max() < 10


def test_convert_compressed_without_format_is_decoded_from_the_data() -> None:
    msg = convert.rgb_to_compressed(RGB, 'png')
    msg.format = ''
    np.testing.assert_array_equal(images.to_rgb(msg), RGB)


@pytest.mark.parametrize(('fmt', 'data', 'match'), [
    ('tiff', b'II*\x00', "unsupported compressed format 'tiff'"),
    ('png', b'', "empty 'png' compressed image"),
    ('jpeg', b'not a jpeg at all', 'not a PNG or JPEG image'),
    ('jpeg', b'\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03' + bytes(40),
     "cannot decode the 'jpeg' compressed image"),
])
def test_convert_rejects_bad_compressed_images(fmt: str, data: bytes, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        images.to_rgb(CompressedImage(format=fmt, data=data))


def camera_set(seed: int) -> list[object]:
    """A front JPEG, a padded bgr8 raw and a PNG wrist view, as a synchronized set holds them."""
    rng = np.random.default_rng(seed)
    rgb = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    return [convert.rgb_to_compressed(rgb[0], 'jpeg'),
            convert.rgb_to_image(rgb[1], 'bgr8', padding=4),
            convert.rgb_to_compressed(rgb[2], 'png')]


def test_convert_views_decoded_side_by_side_equal_one_after_the_other() -> None:
    roles = ['front', 'left', 'right']
    with ThreadPoolExecutor(3) as pool:
        for seed in range(5):
            msgs = camera_set(seed)
            parallel = images.to_views(msgs, roles, pool=pool)
            sequential = images.to_views(msgs, roles)
            assert list(parallel) == roles
            for role in roles:
                np.testing.assert_array_equal(parallel[role], sequential[role])


@pytest.mark.parametrize('bad', [[1], [2], [1, 2], [0, 2]])
def test_convert_views_side_by_side_name_the_first_bad_camera(bad: list[int]) -> None:
    msgs = camera_set(0)
    for index in bad:
        msgs[index] = CompressedImage(format='jpeg', data=b'not a jpeg at all')
    with ThreadPoolExecutor(3) as pool, pytest.raises(
            images.ViewError, match='not a PNG or JPEG image') as raised:
        images.to_views(msgs, ['front', 'left', 'right'], pool=pool)
    assert raised.value.index == bad[0]


def test_convert_rgb_to_image_rejects_wrong_input() -> None:
    with pytest.raises(ImageError, match="unsupported encoding 'yuv422'"):
        convert.rgb_to_image(RGB, 'yuv422')
    with pytest.raises(ImageError, match='mono8 needs uint8 HxW pixels'):
        convert.rgb_to_image(RGB, 'mono8')
    with pytest.raises(ImageError, match="'jpeg' or 'png'"):
        convert.rgb_to_compressed(RGB, 'bmp')


# -- serialized frames (the node's raw subscriptions, bag replay) ---------------------------------

def test_parse_frame_reads_what_rclpy_deserializes() -> None:
    from rclpy.serialization import serialize_message

    pixels = np.random.default_rng(3).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for encoding, padding in (('rgb8', 0), ('bgr8', 3), ('mono8', 1), ('rgba8', 2)):
        source = pixels[:, :, 0] if encoding == 'mono8' else pixels
        msg = convert.rgb_to_image(source, encoding, stamp_ns=1_700_000_000_123_456_789,
                                   frame_id='cam_é', padding=padding)
        frame = images.parse_frame(serialize_message(msg), compressed=False)
        assert (frame.stamp_ns, frame.frame_id, frame.encoding) == (
            time_to_ns(msg.header.stamp), 'cam_é', encoding)
        assert (frame.height, frame.width, frame.step) == (msg.height, msg.width, msg.step)
        assert bytes(frame.data) == bytes(msg.data)
        assert np.array_equal(images.to_rgb(frame), images.to_rgb(msg))
    jpeg = convert.rgb_to_compressed(pixels, 'jpeg', stamp_ns=7)
    frame = images.parse_frame(serialize_message(jpeg), compressed=True)
    assert (frame.stamp_ns, frame.frame_id, frame.format) == (7, '', jpeg.format)
    assert np.array_equal(images.to_rgb(frame), images.to_rgb(jpeg))


@pytest.mark.parametrize(('cut', 'error'), [
    (3, 'no CDR encapsulation header'),
    (10, 'truncated at byte 4'),
    (50, 'declares 18 bytes at byte 48, but only 2 follow'),   # the data's length is a lie
])
def test_parse_frame_refuses_truncated_bytes(cut: int, error: str) -> None:
    from rclpy.serialization import serialize_message

    msg = convert.rgb_to_image(np.zeros((2, 3, 3), np.uint8) + 9, frame_id='f')
    data = serialize_message(msg)
    assert len(images.parse_frame(data, compressed=False).data) == 18
    with pytest.raises(ImageError, match=error):
        images.parse_frame(data[:cut], compressed=False)


def test_parse_frame_refuses_bytes_that_are_no_cdr() -> None:
    with pytest.raises(ImageError, match='no CDR encapsulation header'):
        images.parse_frame(b'\x89PNG\r\n\x1a\n' + bytes(40), compressed=True)
