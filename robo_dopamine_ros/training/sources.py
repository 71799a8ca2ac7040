"""Raw demonstrations for step 0: upstream's video layout, frame folders, or rosbag2 bags.

An episode is described by a small picklable :class:`RawEpisode` (paths only) and opened in the
worker process that converts it, as :class:`OpenedEpisode`: three cameras of equal length whose
frame ``i`` is one moment of the episode. Keyframe ids index these frames:

* video layout (upstream): ``episode_XXX/{cam_high,cam_left_wrist,cam_right_wrist}.mp4``; a
  camera may also be a folder of frames (``cam_high/``), as the benchmark layout has;
* bag: frame ``i`` is the ``i``-th synchronized set of the three image topics, matched on header
  stamps by the node's own synchronizer, so training frames are the sets the node would score.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from ..core.errors import ConfigError, ImageError
from ..core.names import CAMERAS, DEFAULT_TOPICS, KEYFRAMES_FILE, TASK_FILE, UPSTREAM_CAMERAS
from ..core.sync import ApproxTimeSynchronizer
from ..files.frames import FrameSource, open_frames, require_equal_lengths
from .layout import EPISODE_PREFIX

log = logging.getLogger(__name__)

VIDEO_SUFFIX = '.mp4'
#: Default bag topics, in view-slot order (the node's default camera topics).
BAG_TOPICS: tuple[str, ...] = tuple(DEFAULT_TOPICS[cam] for cam in CAMERAS)
#: Default max header-stamp spread of one synchronized bag frame (the node's default slop).
BAG_SLOP_NS = 50_000_000


@dataclass(frozen=True)
class RawEpisode:
    """Where one demonstration's frames and annotations are.

    Attributes:
        name: Output directory name (``episode_*``).
        keyframes: ``annotated_keyframes.json`` (may be missing: one whole-episode segment).
        instructions: ``task_instruction.json`` candidates, most specific first.
        cameras: Per camera (``UPSTREAM_CAMERAS`` order), a video file or a folder of frames.
        bag: A rosbag2 directory or file, instead of ``cameras``.
        topics: The bag's image topics in ``UPSTREAM_CAMERAS`` order.
        slop_ns: Max header-stamp spread of one synchronized bag frame.
    """

    name: str
    keyframes: Path
    instructions: tuple[Path, ...]
    cameras: tuple[Path, ...] = ()
    bag: Path | None = None
    topics: tuple[str, ...] = BAG_TOPICS
    slop_ns: int = BAG_SLOP_NS


def discover(raw: Path) -> list[RawEpisode]:
    """The episodes of an upstream raw directory, or ``raw`` itself if it is one episode.

    A raw directory holds ``episode_*`` folders and a shared ``task_instruction.json``; a single
    episode folder (one demonstration, the one-shot case) holds the camera videos itself and
    may carry its own ``task_instruction.json``.

    Raises:
        ConfigError: ``raw`` is missing, holds no episode, or an episode lacks a camera.
    """
    if not raw.is_dir():
        raise ConfigError(f'raw data directory does not exist: {str(raw)!r}')
    if _camera_path(raw, UPSTREAM_CAMERAS[0]) is not None:
        name = raw.name if raw.name.startswith(EPISODE_PREFIX) else EPISODE_PREFIX + raw.name
        return [_video_episode(raw, name, (raw / TASK_FILE,
                                           raw.parent / TASK_FILE))]
    dirs = sorted(p for p in raw.iterdir() if p.is_dir() and p.name.startswith(EPISODE_PREFIX))
    if not dirs:
        raise ConfigError(f'{str(raw)!r} holds neither {EPISODE_PREFIX}* folders nor camera '
                          f'videos ({", ".join(c + VIDEO_SUFFIX for c in UPSTREAM_CAMERAS)})')
    return [_video_episode(d, d.name, (d / TASK_FILE, raw / TASK_FILE))
            for d in dirs]


def bag_episode(bag: Path, keyframes: Path | None = None, instructions: Path | None = None,
                topics: Sequence[str] = BAG_TOPICS, slop_ns: int = BAG_SLOP_NS) -> RawEpisode:
    """Describe a rosbag2 demonstration.

    Args:
        bag: The bag directory (or a bare ``.mcap``/``.db3`` file).
        keyframes: Its keyframes JSON (frame ids = synchronized set indices); default
            ``annotated_keyframes.json`` next to the bag's storage file.
        instructions: Its ``task_instruction.json``; default the one next to the storage file.
        topics: Front, left-wrist and right-wrist image topics (raw or compressed).
        slop_ns: Max header-stamp spread of a synchronized set.

    Raises:
        ConfigError: The bag is missing, or not three topics are given.
    """
    if not bag.exists():
        raise ConfigError(f'bag does not exist: {str(bag)!r}')
    if len(topics) != len(UPSTREAM_CAMERAS):
        raise ConfigError(f'a bag episode needs {len(UPSTREAM_CAMERAS)} image topics (front, '
                          f'left wrist, right wrist), got {list(topics)!r}')
    folder = bag if bag.is_dir() else bag.parent
    name = EPISODE_PREFIX + (bag.name if bag.is_dir() else bag.stem)
    return RawEpisode(name, keyframes or folder / KEYFRAMES_FILE,
                      (instructions or folder / TASK_FILE,), bag=bag,
                      topics=tuple(topics), slop_ns=slop_ns)


def _video_episode(folder: Path, name: str, instructions: tuple[Path, ...]) -> RawEpisode:
    cameras = []
    for cam in UPSTREAM_CAMERAS:
        path = _camera_path(folder, cam)
        if path is None:
            raise ConfigError(f'episode {str(folder)!r} has no {cam}{VIDEO_SUFFIX} video (nor a '
                              f'{cam}/ folder of frames); every episode needs all of '
                              f'{list(UPSTREAM_CAMERAS)!r}')
        cameras.append(path)
    return RawEpisode(name, folder / KEYFRAMES_FILE, instructions, cameras=tuple(cameras))


def _camera_path(folder: Path, cam: str) -> Path | None:
    for path in (folder / f'{cam}{VIDEO_SUFFIX}', folder / cam):
        if path.exists():
            return path
    return None


class OpenedEpisode(abc.ABC):
    """The three cameras of an opened episode; ``num_frames`` frames each. Close after use."""

    num_frames: int

    @abc.abstractmethod
    def frames(self, camera: int, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, RGB uint8 image)`` for the sorted ``indices`` of camera ``camera``."""

    def close(self) -> None:  # noqa: B027 (optional hook: a bag holds nothing open)
        """Release decoders and files."""

    def __enter__(self) -> OpenedEpisode:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_episode(episode: RawEpisode) -> OpenedEpisode:
    """Open an episode's frames (videos, folders or a bag).

    Raises:
        ConfigError, ImageError: A camera cannot be opened or decoded.
    """
    if episode.bag is not None:
        return _BagFrames(episode.bag, episode.topics, episode.slop_ns)
    return _SourceFrames(episode.cameras)


class _SourceFrames(OpenedEpisode):
    """Videos or frame folders (``files.frames``); cameras of unequal length are refused, as by
    every other command (:func:`files.frames.require_equal_lengths`)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._sources: list[FrameSource] = []
        try:
            for path in paths:
                self._sources.append(open_frames(path))
            require_equal_lengths(self._sources)
        except BaseException:
            self.close()
            raise
        self.num_frames = len(self._sources[0])

    def frames(self, camera: int, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        src = self._sources[camera]
        if not indices:
            return
        if not src.is_video:
            for i in indices:
                yield i, src.read(i)
            return
        # Decode straight through the span: frame-exact on every codec (a seek may not be) and,
        # at the density step 0 samples, faster than one seek per frame.
        wanted = set(indices)
        for i in range(indices[0], indices[-1] + 1):
            frame = src.read(i)
            if i in wanted:
                yield i, frame

    def close(self) -> None:
        for src in self._sources:
            src.close()


class _BagFrames(OpenedEpisode):
    """A bag's three image topics, synchronized on header stamps.

    Two passes: the first reads stamps and matches sets; :meth:`frames` decodes only the
    images asked for, so a long bag never has to fit in memory.
    """

    def __init__(self, bag: Path, topics: Sequence[str], slop_ns: int) -> None:
        from ..bags.reader import BagReader

        self._bag = bag
        self._topics = tuple(topics)
        sync = ApproxTimeSynchronizer(len(topics), slop_ns, queue_size=1000)
        counts = [0] * len(topics)
        sets = []
        with BagReader(bag) as reader:
            for message in reader.messages(self._topics):
                stream = self._topics.index(message.topic)
                stamp = message.msg.header.stamp
                sets += sync.push(stream, stamp.sec * 1_000_000_000 + stamp.nanosec,
                                  counts[stream])
                counts[stream] += 1
        sets += sync.flush()
        if not sets:
            raise ConfigError(f'bag {str(bag)!r} has no synchronized image sets on {topics!r} '
                              f'(messages per topic {counts!r}, slop {slop_ns} ns)')
        #: Per frame, the per-topic message index of each camera.
        self._members = [s.items for s in sets]
        self.num_frames = len(sets)
        log.info('%s: %d synchronized frames from %s messages', bag, self.num_frames, counts)

    def frames(self, camera: int, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        from ..bags.reader import BagReader
        from ..pipeline.images import to_rgb as message_to_rgb  # the node's decoder: honours step

        by_message = {self._members[i][camera]: i for i in indices}
        topic = self._topics[camera]
        with BagReader(self._bag) as reader:
            for position, message in enumerate(reader.messages([topic])):
                if position not in by_message:
                    continue
                try:
                    rgb = message_to_rgb(message.msg)
                except ImageError as exc:
                    raise ImageError(f'cannot decode image {position} of {topic!r} in '
                                     f'{str(self._bag)!r}: {exc}') from exc
                yield by_message[position], rgb
