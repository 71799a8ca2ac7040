"""A copy of a bag with added topics (replay's ``--write-bag``), labels carried along."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError
from ..core.names import GOAL_FILE, GROUND_TRUTH_FILE, KEYFRAMES_FILE, TASK_FILE
from ..files.outputs import written
from .msgtypes import typestore
from .reader import BagMessage, BagReader, bag_folder
from .writer import storage_plugin

if TYPE_CHECKING:
    from rosbags.interfaces import Connection, Qos
    from rosbags.rosbag2 import Writer


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
        self._plugin = storage_plugin(storage)
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
