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
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .core.errors import ConfigError, ImageError
from .core.names import (
    CAMERA_FILES,
    DEFAULT_TOPICS,
    GOAL_FILE,
    GROUND_TRUTH_FILE,
    KEYFRAMES_FILE,
    TASK_FILE,
)
from .io.outputs import written
from .synthetic import DEFAULT_START_NS

if TYPE_CHECKING:
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import Connection, Qos
    from rosbags.rosbag2 import Writer
    from rosbags.typesys.store import Typestore

    from .synthetic import SyntheticEpisode

log = logging.getLogger(__name__)

PACKAGE = 'robo_dopamine_ros'
#: Our message types, registered in :func:`typestore` from ``msg/<Name>.msg``.
CUSTOM_MSGS: tuple[str, ...] = ('Progress', 'Reward', 'EpisodeEvent')
IMAGE = 'sensor_msgs/msg/Image'
HEADER = 'std_msgs/msg/Header'
TIME = 'builtin_interfaces/msg/Time'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
STORAGES: tuple[str, ...] = ('mcap', 'sqlite3')
TRANSPORTS: tuple[str, ...] = ('raw', 'compressed')

#: image_transport's format string for JPEG made from RGB input.
JPEG_FORMAT = 'rgb8; jpeg compressed bgr8'
#: Array element types :func:`build_message` stores as numpy arrays (rosbags needs them so).
_NUMPY_TYPES = frozenset({'bool', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32',
                          'int64', 'uint64', 'float32', 'float64'})


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
    The labels (:meth:`SyntheticEpisode.write_labels`: ``ground_truth.json`` plus the topics,
    ``goal.png``, upstream's keyframes and task files) go in the same directory, where replay and
    benchmarks find them.

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
    The bag appears at ``path`` only once complete (io/outputs.py): a frame that cannot be
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

    plugin = _storage_plugin(storage)
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


def videos_to_bag(path: str | Path, front: str | Path, left: str | Path | None = None,
                  right: str | Path | None = None, *, fps: float | None = None,
                  start_ns: int = DEFAULT_START_NS, storage: str = 'mcap',
                  transport: str = 'raw', topics: Mapping[str, str] | None = None,
                  jpeg_quality: int = 90) -> Path:
    """Convert an episode's videos (or frame folders) to a rosbag2 bag at their frame rate.

    Frame ``i`` is stamped ``start_ns + round(i * 1e9 / fps)`` (a zero stamp would read as an
    unset header). Upstream's ``annotated_keyframes.json`` and a ``goal.png`` found beside the
    front source, and the ``task_instruction.json`` there or one level up (upstream keeps it per
    dataset), are copied into the bag directory, where ``replay`` finds them.

    Args:
        path: bag directory to create (must not exist).
        front, left, right: video files or frame folders (wrists optional: single view).
        fps: frame rate; default the front video's (required for frame folders).
        start_ns: stamp of frame 0.
        storage, transport, topics, jpeg_quality: as for :func:`write_episode_bag`.

    Raises:
        ConfigError: unreadable or unequal sources, no frame rate, or a bad argument.
    """
    from .io.frames import open_cameras

    if start_ns <= 0:
        raise ConfigError(f'start_ns must be > 0 (a zero stamp is an unset header), '
                          f'got {start_ns!r}')
    sources = dict(zip(('front', 'left', 'right'), open_cameras(front, left, right),
                       strict=True))
    folder = Path(front).parent
    found = [folder / KEYFRAMES_FILE, folder / GOAL_FILE,
             next((f for f in (folder / TASK_FILE, folder.parent / TASK_FILE) if f.is_file()),
                  folder / TASK_FILE)]

    def copy_labels(bag: Path) -> None:
        for src in found:
            if src.is_file():
                shutil.copyfile(src, bag / src.name)

    try:
        rate = fps or sources['front'].fps
        if not rate or rate <= 0:
            raise ConfigError(f'no frame rate for {str(front)!r}: give fps')
        cams = [cam for cam, src in sources.items() if src is not None]
        frames = ((start_ns + round(i * 1e9 / rate),
                   {cam: sources[cam].read(i) for cam in cams})  # type: ignore[union-attr]
                  for i in range(len(sources['front'])))
        return write_image_bag(path, cams, frames, storage, transport, topics, jpeg_quality,
                               extra_files=copy_labels)
    finally:
        for src in sources.values():
            if src is not None:
                src.close()


def _storage_plugin(storage: str) -> Any:
    from rosbags.rosbag2 import StoragePlugin

    _check_choice('storage', storage, STORAGES)
    return StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3


def _time(store: Typestore, stamp_ns: int) -> Any:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return store.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)


def _image_msg(store: Typestore, rgb: np.ndarray, stamp_ns: int, frame_id: str,
               transport: str, jpeg_quality: int) -> Any:
    header = store.types[HEADER](stamp=_time(store, stamp_ns), frame_id=frame_id)
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
            value = store.types[HEADER](stamp=_time(store, value['stamp']),
                                        frame_id=value['frame_id'])
        elif kind is Nodetype.NAME and spec == TIME:
            value = _time(store, value)
        elif kind is Nodetype.SEQUENCE and spec[0][1][0] in _NUMPY_TYPES:
            value = np.asarray(value, dtype=spec[0][1][0])
        values[name] = value
    return store.types[msgtype](**values)


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
            raise ConfigError(f'cannot read bag {str(self.path)!r}: {e} (a truncated or '
                              'corrupt file? an MCAP file of a killed recording can be '
                              'repaired with `mcap recover`)') from e
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
    def connections(self) -> list[Connection]:
        """The bag's connections (topic, type, stored definition, QoS)."""
        return list(self._open.connections)

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

    def require(self, topics: Sequence[str]) -> None:
        """Raise unless every topic is in the bag.

        Raises:
            ConfigError: naming the missing topics and listing the bag's topics.
        """
        missing = sorted(set(topics) - set(self.topics))
        if missing:
            raise ConfigError(f'topics {missing!r} are not in bag {str(self.path)!r}; '
                              f'it has {sorted(self.topics)!r}')

    def _connections(self, topics: Sequence[str] | None) -> list[Connection]:
        conns = self._open.connections
        if topics is None:
            return list(conns)
        self.require(topics)
        return [c for c in conns if c.topic in set(topics)]

    def raw(self, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
        """Messages as CDR bytes (``msg`` is ``bytes``), for publishing as they are.

        Raises:
            ConfigError: the storage file breaks off or is corrupt; says how many messages were
                read before, which the caller has already received.
        """
        from rosbags.rosbag2 import ReaderError

        count = 0
        try:
            for conn, stamp, data in self._open.messages(connections=self._connections(topics)):
                yield BagMessage(conn.topic, conn.msgtype, stamp, data)
                count += 1
        except (ReaderError, sqlite3.DatabaseError, OSError, EOFError) as e:
            raise ConfigError(f'bag {str(self.path)!r} is truncated or corrupt: reading '
                              f'stopped after {count} messages: {e}') from e

    def decode(self, message: BagMessage) -> BagMessage:
        """A message of :meth:`raw` with ``msg`` deserialized to a rosbags dataclass.

        Raises:
            ConfigError: the message cannot be decoded with its stored definition (corrupt).
        """
        from rosbags.highlevel import AnyReaderError

        try:
            return message._replace(msg=self._open.deserialize(message.msg, message.msgtype))
        except AnyReaderError as e:
            raise ConfigError(f'cannot decode a {message.msgtype!r} message on '
                              f'{message.topic!r} in {str(self.path)!r}: {e}') from e

    def messages(self, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
        """Messages deserialized to rosbags dataclasses (see :meth:`raw`, :meth:`decode`)."""
        for message in self.raw(topics):
            yield self.decode(message)


class BagCopy:
    """A new bag with every topic of an open :class:`BagReader` plus topics added by the caller.

    For replay's ``--write-bag``: the copy keeps each connection's stored definition and QoS, so
    it opens wherever the input did (Foxglove, ``ros2 bag``), and the added topics (our message
    types from :func:`typestore`) carry their definitions too. The label files of the input's
    directory (ground truth, goal, keyframes, task) are copied along. Messages may be written
    out of time order (results come after the frames they score); readers sort by bag time.

    Raises:
        ConfigError: ``path`` exists, or a topic of the input has no definition to copy.
    """

    def __init__(self, path: str | Path, source: BagReader, storage: str = 'mcap') -> None:
        self.path = Path(path)
        self._plugin = _storage_plugin(storage)
        self._source = source
        self._writer: Writer | None = None
        self._conns: dict[str, Connection] = {}

    def __enter__(self) -> BagCopy:
        from rosbags.rosbag2 import Writer, WriterError

        if self.path.exists():
            raise ConfigError(f'bag path exists already, not overwriting: {str(self.path)!r}')
        # Written aside and moved into place by __exit__: a failed run leaves no half bag.
        self._staging = written(self.path, replace=False)
        folder = self._staging.__enter__()
        self._writer = Writer(folder, version=9, storage_plugin=self._plugin)
        try:
            self._writer.open()
            for conn in self._source.connections:
                if conn.topic in self._conns:
                    continue        # several recorded publishers: one connection in the copy
                stored = bool(conn.msgdef.data and conn.digest)
                if not stored and conn.msgtype not in typestore().fielddefs:
                    raise ConfigError(f'cannot copy {conn.topic!r}: the bag stores no '
                                      f'definition of {conn.msgtype!r} and it is unknown here')
                self._conns[conn.topic] = self._writer.add_connection(
                    conn.topic, conn.msgtype, typestore=typestore(),
                    msgdef=conn.msgdef.data if stored else None,
                    rihs01=conn.digest if stored else None,
                    serialization_format=getattr(conn.ext, 'serialization_format', 'cdr'),
                    offered_qos_profiles=getattr(conn.ext, 'offered_qos_profiles', []))
        except (WriterError, ConfigError) as e:
            self._writer.close()
            error = ConfigError(f'cannot write bag {str(self.path)!r}: {e}')
            self._staging.__exit__(ConfigError, error, None)
            raise error from e
        labels = bag_folder(self._source.path)
        for name in (GROUND_TRUTH_FILE, GOAL_FILE, KEYFRAMES_FILE, TASK_FILE):
            if (labels / name).is_file():
                shutil.copyfile(labels / name, folder / name)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            self._staging.__exit__(exc_type, exc, tb)

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        """Add a topic of a type in :func:`typestore`, offered with ``qos`` (for playback)."""
        from rosbags.rosbag2 import WriterError

        assert self._writer is not None, 'use BagCopy in a with block'
        try:
            self._conns[topic] = self._writer.add_connection(
                topic, msgtype, typestore=typestore(), offered_qos_profiles=list(qos))
        except WriterError as e:
            raise ConfigError(f'cannot add {topic!r} to {str(self.path)!r}: {e}') from e

    def copy(self, message: BagMessage) -> None:
        """Write a message of :meth:`BagReader.raw` unchanged."""
        assert self._writer is not None, 'use BagCopy in a with block'
        self._writer.write(self._conns[message.topic], message.stamp_ns, message.msg)

    def write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """Write a rosbags message on an added topic at bag time ``stamp_ns``."""
        assert self._writer is not None, 'use BagCopy in a with block'
        conn = self._conns[topic]
        self._writer.write(conn, stamp_ns, typestore().serialize_cdr(msg, conn.msgtype))


def bag_folder(bag: str | Path) -> Path:
    """Where a bag's label files are: the bag directory, or a bare storage file's folder."""
    path = Path(bag)
    return path if path.is_dir() else path.parent


def read_messages(path: str | Path, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """Iterate the deserialized messages of a bag in time order (opens and closes it)."""
    with BagReader(path) as bag:
        yield from bag.messages(topics)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f'{name} must be one of {list(choices)!r}, got {value!r}')
