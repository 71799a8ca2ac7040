"""Image preparation: Qwen2.5-VL smart_resize literals and RGB conversion."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from robo_dopamine_ros.core.errors import ConfigError, ImageError
from robo_dopamine_ros.core.images import (
    PixelLimits,
    blank_goal,
    prepare,
    smart_resize,
    to_rgb,
    visual_tokens,
)


@pytest.mark.parametrize(('hw', 'expected'), [
    ((480, 640), (224, 308)),      # docs/upstream.md §2.2 worked example: 11x8 = 88 tokens
    ((224, 224), (224, 224)),
    ((240, 320), (224, 308)),
    ((56, 56), (112, 112)),        # below min_pixels -> scaled up to >= 12544
    ((1080, 1920), (196, 364)),
])
def test_images_smart_resize_matches_qwen(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    h, w = smart_resize(*hw)
    assert (h, w) == expected
    assert h % 28 == 0 and w % 28 == 0 and 12544 <= h * w <= 76800


def test_images_smart_resize_with_transformers_literal() -> None:
    # transformers' own test pins this value for its default bounds.
    assert smart_resize(561, 278, factor=28, min_pixels=56 * 56,
                        max_pixels=28 * 28 * 1280) == (560, 280)


def test_images_visual_tokens_of_a_vga_frame() -> None:
    assert visual_tokens(480, 640) == 88
    assert visual_tokens(480, 640, PixelLimits(12544, 200_000)) == 13 * 18   # 364x504 px


def test_images_pixel_limits_are_validated() -> None:
    with pytest.raises(ConfigError):
        PixelLimits(100, 50)


def test_images_tiny_or_extreme_images_are_rejected() -> None:
    with pytest.raises(ImageError, match='smaller'):
        smart_resize(10, 100)
    with pytest.raises(ImageError, match='aspect'):
        smart_resize(28, 28 * 201)


def test_images_to_rgb_handles_gray_rgba_and_pil() -> None:
    gray = np.full((30, 40), 7, np.uint8)
    assert to_rgb(gray).shape == (30, 40, 3)
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 0] = 200
    assert to_rgb(rgba)[0, 0].tolist() == [200, 0, 0]
    pil = Image.new('RGB', (40, 30), (1, 2, 3))
    assert to_rgb(pil)[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize('bad', [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 2), np.uint8),
                                 np.zeros((0, 4, 3), np.uint8), 'not an image'])
def test_images_to_rgb_rejects_bad_input(bad: object) -> None:
    with pytest.raises(ImageError):
        to_rgb(bad)  # type: ignore[arg-type]


def test_images_prepare_resizes_and_keeps_colour() -> None:
    img = np.zeros((480, 640, 3), np.uint8)
    img[..., 0] = 255
    out = prepare(img)
    assert out.shape == (224, 308, 3) and out.dtype == np.uint8
    assert out[100, 100].tolist() == [255, 0, 0]
    same = np.zeros((224, 224, 3), np.uint8)
    assert prepare(same) is not None and prepare(same).shape == (224, 224, 3)


def test_images_blank_goal_is_uniform_grey() -> None:
    g = blank_goal()
    assert g.shape == (224, 224, 3) and int(g.min()) == int(g.max()) == 128
