"""The LeRobot v3.0 dataset layout, read with pyarrow.

Taken from lerobot's ``datasets/utils.py``, ``dataset_metadata.py`` and ``dataset_writer.py``
(read, not imported: the package cannot be installed next to this venv)::

    meta/info.json                                  codebase_version "v3.0", fps, features,
                                                    data_path / video_path templates, totals
    meta/tasks.parquet                              task (pandas index) -> task_index
    meta/episodes/chunk-XXX/file-XXX.parquet        one row per episode: episode_index, tasks,
                                                    length, dataset_from/to_index,
                                                    data/chunk_index, data/file_index,
                                                    videos/<key>/{chunk,file}_index,
                                                    videos/<key>/{from,to}_timestamp
    data/chunk-XXX/file-XXX.parquet                 one row per frame of several episodes:
                                                    index, episode_index, frame_index,
                                                    timestamp, task_index, other features
    videos/<key>/chunk-XXX/file-XXX.mp4             several episodes one after another

Frame ``i`` of episode ``e`` of camera ``key`` is the frame of that episode's video file at
``videos/<key>/from_timestamp + timestamp[i]`` seconds, as lerobot's reader looks it up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError

CODEBASE_VERSION = 'v3.0'
INFO_PATH = 'meta/info.json'
STATS_PATH = 'meta/stats.json'
TASKS_PATH = 'meta/tasks.parquet'
EPISODES_DIR = 'meta/episodes'
CHUNK_FILE = 'chunk-{chunk_index:03d}/file-{file_index:03d}'
EPISODES_PATH = f'{EPISODES_DIR}/{CHUNK_FILE}.parquet'
DATA_PATH = f'data/{CHUNK_FILE}.parquet'
VIDEO_PATH = 'videos/{video_key}/' + CHUNK_FILE + '.mp4'
#: The features every frame has (lerobot ``DEFAULT_FEATURES``).
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    'timestamp': {'dtype': 'float32', 'shape': [1], 'names': None},
    'frame_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'episode_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'task_index': {'dtype': 'int64', 'shape': [1], 'names': None},
}
#: lerobot's default ``tolerance_s``: a decoded frame must lie this close to the queried time.
TOLERANCE_S = 1e-4


@dataclass(frozen=True)
class VideoLocation:
    """Where one camera's frames of one episode are: a file and a time range in it."""

    path: Path
    from_s: float
    to_s: float


@dataclass(frozen=True)
class EpisodeMeta:
    """One row of ``meta/episodes``: what the relabeller needs of an episode."""

    index: int
    length: int
    tasks: tuple[str, ...]
    dataset_from_index: int
    data_path: Path
    videos: dict[str, VideoLocation]


@dataclass(frozen=True)
class FrameTable:
    """An episode's per-frame columns, in frame order."""

    index: list[int]
    frame_index: list[int]
    timestamp: list[float]
    task_index: list[int]


def parquet() -> Any:
    """pyarrow.parquet, or a ConfigError saying how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ConfigError('LeRobot datasets need pyarrow: pip install pyarrow av') from e
    return pq


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn pyarrow's errors on an unreadable file (truncated, not parquet) into one line that
    names the file: a ConfigError, never a raw ``ArrowInvalid`` traceback."""
    try:
        yield
    except (OSError, ValueError) as e:       # ArrowInvalid and ArrowIOError are both
        if isinstance(e, ConfigError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        first = first.split(f"{path}': ", 1)[-1]         # pyarrow repeats the path
        raise ConfigError(f'cannot read {str(path)!r}: {first}') from e


def read_table(path: Path, shown: Path | None = None, **kwargs: Any) -> Any:
    """``pyarrow.parquet.read_table`` whose errors name the file (``shown``, else ``path``)."""
    pq = parquet()
    with reading(shown or path):
        return pq.read_table(path, **kwargs)


class LeRobotV3:
    """A LeRobot v3 dataset folder, opened for reading.

    Raises (from the constructor):
        ConfigError: Not a v3 dataset (no ``meta/info.json``, another codebase version,
            missing templates, no episodes).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / INFO_PATH
        if not info_path.is_file():
            raise ConfigError(f'not a LeRobot dataset: {str(info_path)!r} does not exist')
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text(encoding='utf-8'))
        except (OSError, ValueError) as e:
            raise ConfigError(f'cannot read {str(info_path)!r}: {e}') from e
        version = str(self.info.get('codebase_version', ''))
        if not version.startswith('v3.'):
            raise ConfigError(f'{str(self.root)!r} is a LeRobot {version or "unversioned"} '
                              'dataset; only the v3 layout is read (lerobot converts v2.1 with '
                              'lerobot.scripts.convert_dataset_v21_to_v30)')
        for key in ('fps', 'features', 'data_path'):
            if key not in self.info:
                raise ConfigError(f'{str(info_path)!r} has no {key!r}')
        if not isinstance(self.info['features'], dict):
            raise ConfigError(f'{str(info_path)!r}: features is not a mapping')
        if 'video_path' not in self.info and any(
                isinstance(ft, dict) and ft.get('dtype') == 'video'
                for ft in self.info['features'].values()):
            raise ConfigError(f'{str(info_path)!r} has video features but no \'video_path\'')
        self.fps = float(self.info['fps'])
        self.features: dict[str, dict[str, Any]] = self.info['features']

    @property
    def video_keys(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft.get('dtype') == 'video']

    def require_video_key(self, key: str) -> None:
        """Raise a ConfigError naming the dataset's video keys if ``key`` is not one."""
        if key in self.video_keys:
            return
        kind = self.features.get(key, {}).get('dtype')
        what = f'a {kind!r} feature, not a video' if kind else 'not a feature'
        raise ConfigError(f'camera key {key!r} is {what} of {str(self.root)!r}; its video keys: '
                          f'{self.video_keys}')

    @cached_property
    def tasks(self) -> dict[int, str]:
        """task_index -> task text (``meta/tasks.parquet``: the task is the pandas index)."""
        path = self.root / TASKS_PATH
        if not path.is_file():
            raise ConfigError(f'{str(path)!r} does not exist')
        table = read_table(path).to_pydict()
        name = 'task' if 'task' in table else '__index_level_0__'
        if name not in table or 'task_index' not in table:
            raise ConfigError(f'{str(path)!r} has no task / task_index columns: {list(table)}')
        return {int(i): str(t) for i, t in zip(table['task_index'], table[name], strict=True)}

    @cached_property
    def _episode_rows(self) -> dict[int, dict[str, Any]]:
        files = sorted((self.root / EPISODES_DIR).glob('*/*.parquet'))
        if not files:
            raise ConfigError(f'no episode metadata in {str(self.root / EPISODES_DIR)!r}')
        pq = parquet()
        rows: dict[int, dict[str, Any]] = {}
        for path in files:
            with reading(path):
                names = [n for n in pq.read_schema(path).names if not n.startswith('stats/')]
            if 'episode_index' not in names:
                raise ConfigError(f'{str(path)!r} has no episode_index column: {names}')
            for row in read_table(path, columns=names).to_pylist():
                rows[int(row['episode_index'])] = row
        total = self.info.get('total_episodes')
        if total is not None and total != len(rows):
            raise ConfigError(f'{str(self.root / INFO_PATH)!r} says total_episodes {total}, '
                              f'{str(self.root / EPISODES_DIR)!r} holds {len(rows)} episodes')
        return dict(sorted(rows.items()))

    @property
    def episode_indices(self) -> list[int]:
        return list(self._episode_rows)

    def episode(self, index: int) -> EpisodeMeta:
        """The metadata of episode ``index``.

        Raises:
            ConfigError: No such episode, or its row lacks a column the layout requires.
        """
        rows = self._episode_rows
        if index not in rows:
            raise ConfigError(f'episode {index!r} is not in {str(self.root)!r}, which has '
                              f'{len(rows)} episodes ({_span(list(rows))})')
        row = rows[index]
        try:
            data = self.root / self.info['data_path'].format(
                chunk_index=row['data/chunk_index'], file_index=row['data/file_index'])
            videos = {key: VideoLocation(
                self.root / self.info['video_path'].format(
                    video_key=key, chunk_index=row[f'videos/{key}/chunk_index'],
                    file_index=row[f'videos/{key}/file_index']),
                float(row[f'videos/{key}/from_timestamp']),
                float(row[f'videos/{key}/to_timestamp'])) for key in self.video_keys}
            return EpisodeMeta(index, int(row['length']), tuple(row.get('tasks') or ()),
                               int(row['dataset_from_index']), data, videos)
        except KeyError as e:
            raise ConfigError(f'episode {index} of {str(self.root)!r}: the episode metadata '
                              f'has no {e.args[0]!r} column') from e

    def task_of(self, meta: EpisodeMeta) -> str:
        """The episode's task: the first of its ``tasks``, else its first frame's task_index."""
        if meta.tasks:
            return meta.tasks[0]
        return self.tasks[self.frames(meta).task_index[0]]

    def frames(self, meta: EpisodeMeta) -> FrameTable:
        """The episode's frame rows, checked against its metadata.

        Raises:
            ConfigError: The data file is missing, or holds other rows than the metadata says.
        """
        if not meta.data_path.is_file():
            raise ConfigError(f'data file of episode {meta.index} missing: '
                              f'{str(meta.data_path)!r}')
        cols = ['index', 'episode_index', 'frame_index', 'timestamp', 'task_index']
        table = read_table(meta.data_path, columns=cols,
                           filters=[('episode_index', '=', meta.index)]).sort_by('frame_index')
        data = table.to_pydict()
        if data['frame_index'] != list(range(meta.length)):
            raise ConfigError(f'{str(meta.data_path)!r} holds {table.num_rows} frames of '
                              f'episode {meta.index}, its metadata says {meta.length} '
                              '(frame_index 0..length-1)')
        first = meta.dataset_from_index
        if data['index'] != list(range(first, first + meta.length)):
            raise ConfigError(f'{str(meta.data_path)!r}: episode {meta.index} has index '
                              f'{data["index"][0]}.., its metadata says dataset_from_index '
                              f'{first}')
        return FrameTable(data['index'], data['frame_index'], data['timestamp'],
                          data['task_index'])


def _span(indices: list[int]) -> str:
    if not indices:
        return 'none'
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f'{indices[0]}..{indices[-1]}'
    return ', '.join(map(str, indices))
