"""rosbag2 files without ROS: a typestore with our messages, episode bags, a bag reader.

rosbag2 (``ros2 bag``) is not installable from PyPI, so bags are read and written with the
pure-Python ``rosbags`` library: rosbag2 version 9 directories with ``mcap`` or ``sqlite3``
storage, readable by ``ros2 bag`` on a robot PC. rosbags' CDR is byte-compatible with rclpy's,
so :mod:`robo_dopamine_ros.ros.bag_tools` publishes the raw bytes read here unchanged.

Our messages (Progress, Reward, EpisodeEvent) are registered in the typestore from the same
``.msg`` files rosidl builds, so bags of node output decode without the colcon build.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .core.errors import ConfigError, ImageError

if TYPE_CHECKING:
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import Connection, Qos
    from rosbags.typesys.store import Typestore

    from .synthetic import SyntheticEpisode

log = logging.getLogger(__name__)

PACKAGE = 'robo_dopamine_ros'
#: Our message types, registered in :func:`typestore` from ``msg/<Name>.msg``.
CUSTOM_MSGS: tuple[str, ...] = ('Progress', 'Reward', 'EpisodeEvent')
IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
STORAGES: tuple[str, ...] = ('mcap', 'sqlite3')
TRANSPORTS: tuple[str, ...] = ('raw', 'compressed')

#: Camera -> raw image topic, as in the node's defaults (``cameras.<name>.topic``).
DEFAULT_TOPICS: dict[str, str] = {
    'front': '/cam_high/image_raw',
    'left': '/cam_left_wrist/image_raw',
    'right': '/cam_right_wrist/image_raw',
}
#: Camera -> ``header.frame_id`` of its images.
FRAME_IDS: dict[str, str] = {'front': 'cam_high', 'left': 'cam_left_wrist',
                             'right': 'cam_right_wrist'}
#: image_transport's format string for JPEG made from RGB input.
JPEG_FORMAT = 'rgb8; jpeg compressed bgr8'
#: Files :func:`write_episode_bag` puts inside the bag directory beside the storage file.
GROUND_TRUTH_FILE = 'ground_truth.json'
GOAL_FILE = 'goal.png'


class BagMessage(NamedTuple):
    """One message read from a bag; ``msg`` is a rosbags dataclass (or CDR bytes, raw)."""

    topic: str
    msgtype: str
    stamp_ns: int   # bag (receive) time; header stamps are inside ``msg``
    msg: Any


def msg_dir() -> Path:
    """The folder with our ``.msg`` files: the source checkout's ``msg/`` or an install's
    ``share/robo_dopamine_ros/msg`` (colcon, found beside the package or on
    ``AMENT_PREFIX_PATH``).

    Raises:
        ConfigError: none found (e.g. a plain ``pip install`` without the sources).
    """
    here = Path(__file__).resolve().parent
    candidates = [here.parent / 'msg']
    candidates += [p / 'share' / PACKAGE / 'msg' for p in here.parents]
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


def camera_topics(transport: str = 'raw',
                  topics: Mapping[str, str] | None = None) -> dict[str, str]:
    """Camera -> topic; compressed images go to ``<raw topic>/compressed`` (image_transport)."""
    _check_choice('transport', transport, TRANSPORTS)
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
    ``ground_truth.json`` (:meth:`SyntheticEpisode.ground_truth` plus the topics) and
    ``goal.png`` go in the same directory, where replay and benchmarks find them.

    Args:
        episode: from :func:`robo_dopamine_ros.synthetic.render_episode`.
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
    from PIL import Image as PilImage
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    _check_choice('storage', storage, STORAGES)
    cam_topics = camera_topics(transport, topics)
    if 'front' not in cam_topics:
        raise ConfigError(f'topics must name the front camera, got {sorted(cam_topics)!r}')
    if not include_wrists:
        cam_topics = {'front': cam_topics['front']}
    if not 1 <= jpeg_quality <= 100:
        raise ConfigError(f'jpeg_quality must be in [1, 100], got {jpeg_quality!r}')
    out = Path(path)
    if out.exists():
        raise ConfigError(f'bag path exists already, not overwriting: {str(out)!r}')
    store = typestore()
    msgtype = IMAGE if transport == 'raw' else COMPRESSED_IMAGE
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    try:
        with Writer(out, version=9, storage_plugin=plugin) as writer:
            conns = {cam: writer.add_connection(topic, msgtype, typestore=store)
                     for cam, topic in cam_topics.items()}
            for i, stamp in enumerate(episode.stamps_ns):
                for cam, conn in conns.items():
                    msg = _image_msg(store, episode.frames[cam][i], stamp, FRAME_IDS[cam],
                                     transport, jpeg_quality)
                    writer.write(conn, stamp, store.serialize_cdr(msg, msgtype))
    except WriterError as e:
        raise ConfigError(f'cannot write bag {str(out)!r}: {e}') from e
    labels = {**episode.ground_truth(), 'topics': cam_topics, 'transport': transport}
    (out / GROUND_TRUTH_FILE).write_text(json.dumps(labels, indent=1) + '\n', encoding='utf-8')
    PilImage.fromarray(episode.goal).save(out / GOAL_FILE)
    return out


def _image_msg(store: Typestore, rgb: np.ndarray, stamp_ns: int, frame_id: str,
               transport: str, jpeg_quality: int) -> Any:
    header = store.types['std_msgs/msg/Header'](
        stamp=store.types['builtin_interfaces/msg/Time'](sec=stamp_ns // 1_000_000_000,
                                                         nanosec=stamp_ns % 1_000_000_000),
        frame_id=frame_id)
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


def load_ground_truth(bag: str | Path) -> dict[str, Any]:
    """The labels :func:`write_episode_bag` stored with a synthetic bag.

    Raises:
        ConfigError: the bag has no ``ground_truth.json`` (not a synthetic bag) or it is broken.
    """
    path = Path(bag) / GROUND_TRUTH_FILE
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise ConfigError(f'no {GROUND_TRUTH_FILE} in {str(bag)!r}: '
                          'not a synthetic episode bag') from None
    except (OSError, ValueError) as e:
        raise ConfigError(f'cannot read {str(path)!r}: {e}') from e


class BagReader:
    """An open rosbag2 bag (directory, or a bare ``.mcap``/``.db3`` file), read in time order.

    Message types come from the definitions stored in the bag, falling back to
    :func:`typestore` for bags without them. A context manager; the bag is open inside it.

    Raises:
        ConfigError: the path does not exist, is a ROS 1 bag, or is not a readable rosbag2.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ConfigError(f'bag does not exist: {str(self.path)!r}')
        if self.path.suffix == '.bag':
            raise ConfigError(f'{str(self.path)!r} is a ROS 1 bag; convert it first '
                              '(rosbags-convert)')
        self._reader: AnyReader | None = None

    def __enter__(self) -> BagReader:
        from rosbags.highlevel import AnyReader, AnyReaderError

        try:
            reader = AnyReader([self.path], default_typestore=typestore())
            reader.open()
        except (AnyReaderError, FileNotFoundError, OSError) as e:
            raise ConfigError(f'cannot read bag {str(self.path)!r}: {e}') from e
        self._reader = reader
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def _open(self) -> AnyReader:
        if self._reader is None:
            raise ConfigError(f'bag {str(self.path)!r} is not open (use it in a with block)')
        return self._reader

    @property
    def topics(self) -> dict[str, str]:
        """Topic -> message type (``pkg/msg/Name``)."""
        return {c.topic: c.msgtype for c in self._open.connections}

    @property
    def offered_qos(self) -> dict[str, list[Qos]]:
        """Topic -> the QoS profiles its publishers offered when recorded (may be empty)."""
        out: dict[str, list[Qos]] = {}
        for c in self._open.connections:
            out.setdefault(c.topic, []).extend(getattr(c.ext, 'offered_qos_profiles', []))
        return out

    @property
    def message_counts(self) -> dict[str, int]:
        """Topic -> number of messages."""
        counts: dict[str, int] = {}
        for c in self._open.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        return counts

    @property
    def start_ns(self) -> int:
        """Bag time of the first message."""
        return self._open.start_time

    @property
    def end_ns(self) -> int:
        """Bag time just after the last message."""
        return self._open.end_time

    def _connections(self, topics: Sequence[str] | None) -> list[Connection]:
        conns = self._open.connections
        if topics is None:
            return list(conns)
        missing = sorted(set(topics) - {c.topic for c in conns})
        if missing:
            raise ConfigError(f'topics {missing!r} are not in bag {str(self.path)!r}; '
                              f'it has {sorted(self.topics)!r}')
        return [c for c in conns if c.topic in set(topics)]

    def raw(self, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
        """Messages as CDR bytes (``msg`` is ``bytes``), for publishing as they are."""
        for conn, stamp, data in self._open.messages(connections=self._connections(topics)):
            yield BagMessage(conn.topic, conn.msgtype, stamp, data)

    def messages(self, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
        """Messages deserialized to rosbags dataclasses.

        Raises:
            ConfigError: a message cannot be decoded with its stored definition.
        """
        from rosbags.highlevel import AnyReaderError

        reader = self._open
        for conn, stamp, data in reader.messages(connections=self._connections(topics)):
            try:
                msg = reader.deserialize(data, conn.msgtype)
            except AnyReaderError as e:
                raise ConfigError(f'cannot decode a {conn.msgtype!r} message on '
                                  f'{conn.topic!r} in {str(self.path)!r}: {e}') from e
            yield BagMessage(conn.topic, conn.msgtype, stamp, msg)


def read_messages(path: str | Path, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """Iterate the deserialized messages of a bag in time order (opens and closes it)."""
    with BagReader(path) as bag:
        yield from bag.messages(topics)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f'{name} must be one of {list(choices)!r}, got {value!r}')
