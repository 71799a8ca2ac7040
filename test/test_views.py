"""Camera -> view slot mapping: three views, single-view duplication, one wrist missing."""

from __future__ import annotations

import numpy as np
import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.views import ViewLayout, layout_name, layout_of, map_views


def test_map_views_three_cameras_keep_their_slots() -> None:
    assert map_views('F', 'L', 'R') == ('F', 'L', 'R')


def test_map_views_single_camera_is_duplicated_into_all_slots() -> None:
    front = np.zeros((4, 4, 3), dtype=np.uint8)
    slots = map_views(front)
    assert all(s is front for s in slots)


def test_map_views_missing_left_wrist_gets_the_front() -> None:
    assert map_views('F', None, 'R') == ('F', 'F', 'R')


def test_map_views_missing_right_wrist_gets_the_front() -> None:
    assert map_views('F', 'L') == ('F', 'L', 'F')


def test_map_views_without_front_raises_config_error() -> None:
    with pytest.raises(ConfigError, match='front'):
        map_views(None, 'L', 'R')


@pytest.mark.parametrize(('left', 'right', 'name'), [
    (True, True, 'three-view'),
    (False, False, 'single-view'),
    (True, False, 'front+left'),
    (False, True, 'front+right'),
])
def test_layout_name_names_each_camera_combination(left: bool, right: bool, name: str) -> None:
    assert layout_name(left, right) == name
    assert layout_of(left, right) is ViewLayout(name)
