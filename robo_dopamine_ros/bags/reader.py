"""Reading rosbag2 bags in time order (raw CDR or decoded) and the labels stored beside them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.errors import ConfigError
from ..core.names import GROUND_TRUTH_FILE
from .msgtypes import typestore

if TYPE_CHECKING:
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import Connection, Qos


class BagMessage(NamedTuple):
    """One message read from a bag; ``msg`` is a rosbags dataclass (or CDR bytes, raw)."""

    topic: str
    msgtype: str
    stamp_ns: int   # bag (receive) time; header stamps are inside ``msg``
    msg: Any


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


def read_messages(path: str | Path, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """Iterate the deserialized messages of a bag in time order (opens and closes it)."""
    with BagReader(path) as bag:
        yield from bag.messages(topics)


def bag_folder(bag: str | Path) -> Path:
    """Where a bag's label files are: the bag directory, or a bare storage file's folder."""
    path = Path(bag)
    return path if path.is_dir() else path.parent


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
