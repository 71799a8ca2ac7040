"""Our message types in a rosbags typestore, and rosbags messages built from plain values.

Our messages (Progress, Reward, EpisodeEvent, Confidence) are registered in the typestore from
the same ``.msg`` files rosidl builds, so bags of node output decode without the colcon build.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

log = logging.getLogger(__name__)

PACKAGE = 'robo_dopamine_ros'
#: Our message types, registered in :func:`typestore` from ``msg/<Name>.msg``.
CUSTOM_MSGS: tuple[str, ...] = ('Progress', 'Reward', 'EpisodeEvent', 'Confidence')
IMAGE = 'sensor_msgs/msg/Image'
HEADER = 'std_msgs/msg/Header'
TIME = 'builtin_interfaces/msg/Time'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
#: Array element types :func:`build_message` stores as numpy arrays (rosbags needs them so).
_NUMPY_TYPES = frozenset({'bool', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32',
                          'int64', 'uint64', 'float32', 'float64'})


def msg_dir() -> Path:
    """The folder with our ``.msg`` files: the source checkout's ``msg/`` or an install's
    ``share/robo_dopamine_ros/msg`` (colcon, found beside the package or on
    ``AMENT_PREFIX_PATH``).

    Raises:
        ConfigError: none found (e.g. a plain ``pip install`` without the sources).
    """
    package = Path(__file__).resolve().parents[1]
    candidates = [package.parent / 'msg']
    candidates += [p / 'share' / PACKAGE / 'msg' for p in package.parents]
    candidates += [Path(p) / 'share' / PACKAGE / 'msg'
                   for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    for folder in candidates:
        if all((folder / f'{name}.msg').is_file() for name in CUSTOM_MSGS):
            return folder
    raise ConfigError(f'cannot find {PACKAGE} .msg files (looked in the source checkout, the '
                      f'install prefix and AMENT_PREFIX_PATH), first tried {str(candidates[0])!r}')


@functools.cache
def typestore() -> Typestore:
    """The ROS 2 Jazzy typestore with our messages registered; built once and shared, so do
    not register other types in it.

    Without our ``.msg`` files (a plain ``pip install`` ships none) it logs a warning and has
    the standard types only: image bags still work, and bags of node output still decode from
    the definitions stored in them.
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    try:
        folder = msg_dir()
    except ConfigError as e:
        log.warning('%s; %s types are not in the typestore', e, PACKAGE)
        return store
    types: dict[str, Any] = {}
    for name in CUSTOM_MSGS:
        text = (folder / f'{name}.msg').read_text(encoding='utf-8')
        types.update(get_types_from_msg(text, f'{PACKAGE}/msg/{name}'))
    store.register(types)
    return store


def time_msg(store: Typestore, stamp_ns: int) -> Any:
    """A ``builtin_interfaces/Time`` of integer ns."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return store.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)


def build_message(msgtype: str, fields: Mapping[str, Any]) -> Any:
    """A rosbags message of ``msgtype`` (in :func:`typestore`) from plain field values.

    The values are those of :mod:`robo_dopamine_ros.pipeline.fields`: times as integer ns,
    headers as ``{'stamp', 'frame_id'}``, arrays as lists (made numpy arrays of the field's
    type here).
    """
    from rosbags.typesys.base import Nodetype

    store = typestore()
    values: dict[str, Any] = {}
    for name, (kind, spec) in store.fielddefs[msgtype][1]:
        value = fields[name]
        if kind is Nodetype.NAME and spec == HEADER:
            value = store.types[HEADER](stamp=time_msg(store, value['stamp']),
                                        frame_id=value['frame_id'])
        elif kind is Nodetype.NAME and spec == TIME:
            value = time_msg(store, value)
        elif kind is Nodetype.SEQUENCE and spec[0][1][0] in _NUMPY_TYPES:
            value = np.asarray(value, dtype=spec[0][1][0])
        values[name] = value
    return store.types[msgtype](**values)
