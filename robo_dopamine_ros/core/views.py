"""Camera streams -> the GRM's three view slots (front, left wrist, right wrist).

The GRM prompt always has three views per state. Upstream single-view use (later README, the
robometer adapter, egodex in the benchmark) passes the front camera for all three, so a missing
wrist camera is filled with the front image rather than a blank: the model has seen that layout.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from .errors import ConfigError

T = TypeVar('T')


class ViewLayout(str, enum.Enum):
    """Which cameras fed a sample; logged and stored with results, since it changes scores."""

    THREE_VIEW = 'three-view'
    SINGLE_VIEW = 'single-view'
    FRONT_LEFT = 'front+left'
    FRONT_RIGHT = 'front+right'


def map_views(front: T, left: T | None = None, right: T | None = None) -> tuple[T, T, T]:
    """Return ``(front, left, right)`` slot contents; a missing wrist slot gets the front item.

    Works for any item type (arrays, keyed images, paths). With no wrist camera this is the
    upstream single-view layout (front in all three slots); with one wrist missing, only that
    slot is filled with the front.
    """
    if front is None:
        raise ConfigError('the front view is required, got None')
    return (front, front if left is None else left, front if right is None else right)


def layout_of(left_present: bool, right_present: bool) -> ViewLayout:
    """The layout :func:`map_views` produces for these wrist cameras."""
    if left_present and right_present:
        return ViewLayout.THREE_VIEW
    if left_present:
        return ViewLayout.FRONT_LEFT
    if right_present:
        return ViewLayout.FRONT_RIGHT
    return ViewLayout.SINGLE_VIEW


def layout_name(left_present: bool, right_present: bool) -> str:
    """``'three-view'``, ``'single-view'``, ``'front+left'`` or ``'front+right'``."""
    return layout_of(left_present, right_present).value
