"""Writing camera frames (a synthetic episode, any frame stream) as a rosbag2 image bag."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ConfigError, ImageError
from ..core.names import CAMERA_FILES, DEFAULT_TOPICS
from ..files.outputs import written
from .msgtypes import COMPRESSED_IMAGE, HEADER, IMAGE, time_msg, typestore

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

    from ..synthetic.spec import SyntheticEpisode

STORAGES: tuple[str, ...] = ('mcap', 'sqlite3')
TRANSPORTS: tuple[str, ...] = ('raw', 'compressed')
#: image_transport's format string for JPEG made from RGB input.
JPEG_FORMAT = 'rgb8; jpeg compressed bgr8'


def camera_topics(transport: str = 'raw',
                  topics: Mapping[str, str] | None = None) -> dict[str, str]:
    """Camera -> topic; compressed images go to ``<raw topic>/compressed`` (image_transport)."""
    check_choice('transport', transport, TRANSPORTS)
    base = dict(DEFAULT_TOPICS if topics is None else topics)
    unknown = set(base) - set(DEFAULT_TOPICS)
    if unknown:
        raise ConfigError(f'unknown camera names {sorted(unknown)!r}; '
                          f'expected some of {list(DEFAULT_TOPICS)!r}')
    if transport == 'raw':
        return base
    return {cam: f'{topic.rstrip("/")}/compressed' for cam, topic in base.items()}


def write_episode_bag(episode: SyntheticEpisode, path: str | Path, storage: str = 'mcap',
                      transport: str = 'raw', topics: Mapping[str, str] | None = None,
                      include_wrists: bool = True, jpeg_quality: int = 90) -> Path:
    """Write a synthetic episode as a rosbag2 directory, plus its labels beside the storage file.

    Each frame becomes a ``sensor_msgs/Image`` (rgb8) or ``CompressedImage`` (JPEG) whose header
    stamp and bag time are the frame stamp, as a camera driver recorded by ``ros2 bag`` gives.
    The labels (:meth:`SyntheticEpisode.write_labels`: ``ground_truth.json`` plus the topics,
    ``goal.png``, upstream's keyframes and task files) go in the same directory, where replay and
    benchmarks find them.

    Args:
        episode: from :func:`robo_dopamine_ros.synthetic.episode.render_episode`.
        path: bag directory to create (must not exist).
        storage: ``'mcap'`` or ``'sqlite3'``.
        transport: ``'raw'`` or ``'compressed'``.
        topics: camera -> raw topic (default :data:`DEFAULT_TOPICS`); compressed appends
            ``/compressed``.
        include_wrists: False writes the front camera only (single-view layout).
        jpeg_quality: 1..100, for ``compressed``.

    Returns:
        The bag directory.

    Raises:
        ConfigError: a bad argument, or ``path`` exists already.
    """
    cam_topics = camera_topics(transport, topics)
    cameras = tuple(c for c in episode.frames
                    if c in cam_topics and (include_wrists or c == 'front'))
    frames = ((stamp, {cam: episode.frames[cam][i] for cam in cameras})
              for i, stamp in enumerate(episode.stamps_ns))
    out = write_image_bag(path, cameras, frames, storage, transport, topics, jpeg_quality)
    episode.write_labels(out, topics={c: cam_topics[c] for c in cameras}, transport=transport)
    return out


def write_image_bag(path: str | Path, cameras: Sequence[str],
                    frames: Iterable[tuple[int, Mapping[str, np.ndarray]]],
                    storage: str = 'mcap', transport: str = 'raw',
                    topics: Mapping[str, str] | None = None, jpeg_quality: int = 90,
                    extra_files: Callable[[Path], None] | None = None) -> Path:
    """Write camera frames as a rosbag2 directory: one image message per camera and frame.

    Header stamp and bag time of each message are the frame's stamp, as a camera driver
    recorded by ``ros2 bag`` gives. Frames are streamed, so a long video never sits in memory.
    The bag appears at ``path`` only once complete (files/outputs.py): a frame that cannot be
    read leaves nothing behind. ``extra_files(folder)`` adds files to it before then.

    Args:
        path: bag directory to create (must not exist).
        cameras: the cameras written (``front`` first; names of :data:`DEFAULT_TOPICS`).
        frames: ``(stamp_ns, {camera: RGB uint8 HxWx3})`` in time order.
        storage, transport, topics, jpeg_quality: as for :func:`write_episode_bag`.

    Raises:
        ConfigError: a bad argument, or ``path`` exists already.
    """
    from rosbags.rosbag2 import Writer, WriterError

    plugin = storage_plugin(storage)
    cam_topics = camera_topics(transport, topics)
    if not cameras or cameras[0] != 'front' or not set(cameras) <= set(cam_topics):
        raise ConfigError(f'topics must name the front camera and every camera written, got '
                          f'{sorted(cam_topics)!r} for cameras {list(cameras)!r}')
    if not 1 <= jpeg_quality <= 100:
        raise ConfigError(f'jpeg_quality must be in [1, 100], got {jpeg_quality!r}')
    out = Path(path)
    if out.exists():
        raise ConfigError(f'bag path exists already, not overwriting: {str(out)!r}')
    store = typestore()
    msgtype = IMAGE if transport == 'raw' else COMPRESSED_IMAGE
    try:
        with written(out, replace=False) as tmp:
            with Writer(tmp, version=9, storage_plugin=plugin) as writer:
                conns = {cam: writer.add_connection(cam_topics[cam], msgtype, typestore=store)
                         for cam in cameras}
                for stamp, views in frames:
                    for cam, conn in conns.items():
                        msg = _image_msg(store, views[cam], stamp, CAMERA_FILES[cam],
                                         transport, jpeg_quality)
                        writer.write(conn, stamp, store.serialize_cdr(msg, msgtype))
            if extra_files is not None:
                extra_files(tmp)
    except WriterError as e:
        raise ConfigError(f'cannot write bag {str(out)!r}: {e}') from e
    return out


def storage_plugin(storage: str) -> Any:
    """rosbags' storage plugin for ``storage`` (one of :data:`STORAGES`)."""
    from rosbags.rosbag2 import StoragePlugin

    check_choice('storage', storage, STORAGES)
    return StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3


def _image_msg(store: Typestore, rgb: np.ndarray, stamp_ns: int, frame_id: str,
               transport: str, jpeg_quality: int) -> Any:
    header = store.types[HEADER](stamp=time_msg(store, stamp_ns), frame_id=frame_id)
    if transport == 'raw':
        h, w = rgb.shape[:2]
        return store.types[IMAGE](header=header, height=h, width=w, encoding='rgb8',
                                  is_bigendian=0, step=w * 3,
                                  data=np.ascontiguousarray(rgb).reshape(-1))
    import cv2

    ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ImageError(f'JPEG encoding failed for a {rgb.shape!r} frame')
    return store.types[COMPRESSED_IMAGE](header=header, format=JPEG_FORMAT,
                                         data=jpeg.reshape(-1))


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise a :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f'{name} must be one of {list(choices)!r}, got {value!r}')
