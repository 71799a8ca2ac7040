"""An episode's videos (or frame folders) as a rosbag2 bag at their frame rate, labels copied."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from ..core.errors import ConfigError
from ..core.names import GOAL_FILE, KEYFRAMES_FILE, TASK_FILE
from ..synthetic.spec import DEFAULT_START_NS
from .writer import write_image_bag


def episode_labels(front: str | Path) -> list[Path]:
    """The label files :func:`videos_to_bag` copies for this front source: upstream's
    ``annotated_keyframes.json`` and a ``goal.png`` beside it, and ``task_instruction.json``
    there or one level up (upstream keeps it per dataset); only those that exist."""
    folder = Path(front).parent
    task = next((f for f in (folder / TASK_FILE, folder.parent / TASK_FILE) if f.is_file()),
                None)
    return [f for f in (folder / KEYFRAMES_FILE, folder / GOAL_FILE, task)
            if f is not None and f.is_file()]


def videos_to_bag(path: str | Path, front: str | Path, left: str | Path | None = None,
                  right: str | Path | None = None, *, fps: float | None = None,
                  start_ns: int = DEFAULT_START_NS, storage: str = 'mcap',
                  transport: str = 'raw', topics: Mapping[str, str] | None = None,
                  jpeg_quality: int = 90) -> Path:
    """Convert an episode's videos (or frame folders) to a rosbag2 bag at their frame rate.

    Frame ``i`` is stamped ``start_ns + round(i * 1e9 / fps)`` (a zero stamp would read as an
    unset header). The :func:`episode_labels` are copied into the bag directory, where
    ``replay`` finds them, as they are (the command checks them first).

    Args:
        path: bag directory to create (must not exist).
        front, left, right: video files or frame folders (wrists optional: single view).
        fps: frame rate; default the front video's (required for frame folders).
        start_ns: stamp of frame 0.
        storage, transport, topics, jpeg_quality: as for :func:`write_episode_bag`.

    Raises:
        ConfigError: unreadable or unequal sources, no frame rate, or a bad argument.
    """
    from ..files.frames import open_cameras

    if start_ns <= 0:
        raise ConfigError(f'start_ns must be > 0 (a zero stamp is an unset header), '
                          f'got {start_ns!r}')
    sources = dict(zip(('front', 'left', 'right'), open_cameras(front, left, right),
                       strict=True))
    found = episode_labels(front)

    def copy_labels(bag: Path) -> None:
        for src in found:
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
