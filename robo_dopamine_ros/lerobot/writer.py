"""Write LeRobot v3 datasets: from frames (the synthetic generator) or as a copy plus a feature.

Both write through :func:`files.outputs.written`, so a dataset appears whole or not at all. The
layout is the one :mod:`.layout` reads (lerobot's own); ``episodes_per_file`` groups episodes
into the same data, video and episode-metadata files, so several episodes share a file and
readers must locate them by index and timestamp, as lerobot's do.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..files.outputs import write_text, written
from .layout import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_DIR,
    EPISODES_PATH,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    LeRobotV3,
    parquet,
    read_table,
    reading,
)
from .stats import episode_stat_columns, feature_stats
from .video import EpisodeVideoWriter, stream_info

#: Encoder options per codec; lerobot's defaults for AV1 (GOP 2, CRF 30), a fast preset.
CODEC_OPTIONS: dict[str, dict[str, str]] = {
    'libsvtav1': {'g': '2', 'crf': '30', 'preset': '12'},
    'libx264': {'g': '2', 'crf': '23'},
    'mpeg4': {'g': '2', 'qscale': '2'},
}


@dataclass(frozen=True)
class EpisodeFrames:
    """One episode to write: its task, each camera's ``(n, h, w, 3)`` RGB frames, and other
    per-frame features as ``(n, d)`` float32 arrays (e.g. ``observation.state``)."""

    task: str
    videos: Mapping[str, np.ndarray]
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.videos.values())))


def write_dataset(root: str | Path, episodes: Sequence[EpisodeFrames], fps: int, *,
                  codec: str = 'mpeg4', episodes_per_file: int = 2,
                  robot_type: str | None = None) -> Path:
    """Write ``episodes`` as a LeRobot v3 dataset at ``root`` (which must not exist), with the
    statistics LeRobot keeps (:mod:`.stats`: ``meta/stats.json``, per-episode ``stats/…``).

    Raises:
        ConfigError: ``root`` exists, no episodes, cameras or lengths that disagree, or a codec
            this PyAV build lacks.
    """
    import pyarrow as pa

    out = Path(root)
    if out.exists():
        raise ConfigError(f'dataset folder exists already, not overwriting: {str(out)!r}')
    if not episodes or episodes_per_file < 1:
        raise ConfigError('need at least one episode and episodes_per_file >= 1')
    keys = list(episodes[0].videos)
    tasks = list(dict.fromkeys(ep.task for ep in episodes))
    with written(out) as tmp:
        data_rows: dict[str, list[Any]] = {}
        meta_rows: list[dict[str, Any]] = []
        every: dict[str, list[np.ndarray]] = {}      # all frames' values, for meta/stats.json
        writers: dict[str, EpisodeVideoWriter] = {}
        index = 0
        for e, ep in enumerate(episodes):
            if list(ep.videos) != keys or any(len(v) != len(ep) for v in ep.videos.values()):
                raise ConfigError(f'episode {e}: cameras {list(ep.videos)} or their lengths '
                                  f'differ from {keys}')
            file_index, n = e // episodes_per_file, len(ep)
            loc = {'chunk_index': 0, 'file_index': file_index}
            row: dict[str, Any] = {
                'episode_index': e, 'tasks': [ep.task], 'length': n,
                'data/chunk_index': 0, 'data/file_index': file_index,
                'dataset_from_index': index, 'dataset_to_index': index + n}
            for key in keys:
                if e % episodes_per_file == 0:
                    if key in writers:
                        writers[key].close()
                    h, w = ep.videos[key].shape[1:3]
                    writers[key] = EpisodeVideoWriter(
                        tmp / VIDEO_PATH.format(video_key=key, **loc), fps, (w, h), codec,
                        CODEC_OPTIONS.get(codec))
                t0, t1 = writers[key].add_episode(ep.videos[key])
                row.update({f'videos/{key}/chunk_index': 0, f'videos/{key}/file_index': file_index,
                            f'videos/{key}/from_timestamp': t0, f'videos/{key}/to_timestamp': t1})
            row.update({'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': file_index})
            frame = {'index': np.arange(index, index + n), 'episode_index': np.full(n, e),
                     'frame_index': np.arange(n),
                     'timestamp': (np.arange(n) / fps).astype(np.float32),
                     'task_index': np.full(n, tasks.index(ep.task)), **ep.columns}
            for name, values in frame.items():
                data_rows.setdefault(name, []).append(np.asarray(values))
            for name, values in {**ep.videos, **frame}.items():
                every.setdefault(name, []).append(np.asarray(values))
            row.update(episode_stat_columns(
                {name: feature_stats(np.asarray(v), image=name in ep.videos)
                 for name, v in {**ep.videos, **frame}.items()}))
            meta_rows.append(row)
            index += n
            if e % episodes_per_file == episodes_per_file - 1 or e == len(episodes) - 1:
                table = pa.table({k: _column(np.concatenate(v)) for k, v in data_rows.items()})
                _write_parquet(table, tmp / DATA_PATH.format(**loc))
                _write_parquet(pa.Table.from_pylist(meta_rows), tmp / EPISODES_PATH.format(**loc))
                data_rows, meta_rows = {}, []
        for w in writers.values():
            w.close()
        _write_tasks(tmp / TASKS_PATH, tasks)
        features = {key: {'dtype': 'video', 'shape': [*episodes[0].videos[key].shape[1:3], 3],
                          'names': ['height', 'width', 'channels'],
                          'info': stream_info(tmp / VIDEO_PATH.format(
                              video_key=key, chunk_index=0, file_index=0))} for key in keys}
        for name, values in episodes[0].columns.items():
            features[name] = {'dtype': str(np.asarray(values).dtype),
                              'shape': list(np.asarray(values).shape[1:]) or [1], 'names': None}
        info = {'codebase_version': CODEBASE_VERSION, 'robot_type': robot_type,
                'total_episodes': len(episodes), 'total_frames': index,
                'total_tasks': len(tasks), 'chunks_size': 1000, 'data_files_size_in_mb': 100,
                'video_files_size_in_mb': 200, 'fps': fps,
                'splits': {'train': f'0:{len(episodes)}'}, 'data_path': DATA_PATH,
                'video_path': VIDEO_PATH, 'features': {**features, **DEFAULT_FEATURES}}
        _write_json(tmp / INFO_PATH, info)
        _write_json(tmp / STATS_PATH, {name: feature_stats(np.concatenate(v), image=name in keys)
                                       for name, v in every.items()})
    return out


def copy_with_features(source: LeRobotV3, root: str | Path, labels: Any,
                       features: Mapping[str, dict[str, Any]]) -> Path:
    """Copy ``source`` to ``root`` with per-frame ``features`` added, as LeRobot's
    ``modify_features`` adds them, plus their statistics.

    ``labels`` is an arrow table with ``index``, ``episode_index`` and one column per feature
    key (in the feature's dtype); every frame of the dataset must have a row. Videos are
    hard-linked where the file system allows (they are never written to); the data files are
    rewritten with the new columns; ``meta/info.json`` gains the features, ``meta/stats.json``
    (when present) and the ``meta/episodes`` files (when they hold ``stats/…`` columns) their
    statistics (:mod:`.stats`).

    Raises:
        ConfigError: ``root`` exists, a key is a feature already, or a frame has no row.
    """
    import pyarrow.compute as pc

    out = Path(root)
    check_copy_target(source, out, features)
    with written(out) as tmp:
        shutil.copytree(source.root, tmp, copy_function=_link_or_copy)
        for path in sorted((tmp / 'data').glob('*/*.parquet')):
            table = read_table(path, source.root / path.relative_to(tmp))
            rows = pc.index_in(table.column('index'), value_set=labels.column('index'))
            if rows.null_count:
                missing = table.column('index').filter(pc.is_null(rows))[0].as_py()
                raise ConfigError(f'no label for frame index {missing} '
                                  f'({path.relative_to(tmp)})')
            for key in features:
                table = table.append_column(key, labels.column(key).take(rows))
            table = table.replace_schema_metadata(_hf_metadata(table.schema.metadata, features))
            _write_parquet(table, path)
        info = dict(source.info)
        info['features'] = {**source.features, **features}
        _write_json(tmp / INFO_PATH, info)
        stats_path = tmp / STATS_PATH
        if stats_path.is_file():
            with reading(source.root / STATS_PATH):
                stats = json.loads(stats_path.read_text(encoding='utf-8'))
            stats.update({key: feature_stats(labels.column(key).to_numpy(zero_copy_only=False))
                          for key in features})
            _write_json(stats_path, stats)
        _add_episode_stats(source, tmp, labels, features)
    return out


def check_copy_target(source: LeRobotV3, root: Path, features: Iterable[str]) -> None:
    """Raise a ConfigError if :func:`copy_with_features` would refuse ``root`` or a feature."""
    if root.exists():
        raise ConfigError(f'dataset folder exists already, not overwriting: {str(root)!r}')
    present = [key for key in features if key in source.features]
    if present:
        raise ConfigError(f'{str(source.root)!r} has the features {present} already; write the '
                          "copy from a dataset without them (LeRobot's remove_feature drops them)")
    stats = source.root / STATS_PATH
    if stats.is_file():                  # the copy extends it: refuse it before any scoring
        with reading(stats):
            json.loads(stats.read_text(encoding='utf-8'))


def _add_episode_stats(source: LeRobotV3, tmp: Path, labels: Any,
                       features: Mapping[str, dict[str, Any]]) -> None:
    """Per-episode ``stats/<key>/<stat>`` columns, in ``meta/episodes`` files that have any."""
    import pyarrow as pa

    episodes = labels.column('episode_index').to_numpy()
    for path in sorted((tmp / EPISODES_DIR).glob('*/*.parquet')):
        table = read_table(path, source.root / path.relative_to(tmp))
        if not any(name.startswith('stats/') for name in table.column_names):
            continue
        columns: dict[str, list[Any]] = {}
        for e in table.column('episode_index').to_pylist():
            mine = labels.filter(pa.array(episodes == e))
            per = {key: feature_stats(mine.column(key).to_numpy(zero_copy_only=False))
                   for key in features}
            for name, value in episode_stat_columns(per).items():
                columns.setdefault(name, []).append(value)
        for name, values in columns.items():
            table = table.append_column(name, pa.array(values))
        _write_parquet(table, path)


def _column(values: np.ndarray) -> Any:
    """One arrow column as lerobot stores a feature: shape ``[1]`` as scalars
    (``datasets.Value``), longer vectors as fixed-size lists (``datasets.Sequence``)."""
    import pyarrow as pa

    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 1:
        return pa.array(values)
    flat = pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _hf_metadata(metadata: dict[bytes, bytes] | None,
                 features: Mapping[str, dict[str, Any]]) -> dict[bytes, bytes]:
    """The schema metadata with ``features`` declared in the ``huggingface`` ones, if any."""
    out = dict(metadata or {})
    if b'huggingface' in out:
        hf = json.loads(out[b'huggingface'])
        declared = hf.setdefault('info', {}).setdefault('features', {})
        for key, feature in features.items():
            declared[key] = {'dtype': feature['dtype'], '_type': 'Value'}
        out[b'huggingface'] = json.dumps(hf).encode()
    return out


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """``meta/tasks.parquet`` as pandas writes lerobot's frame: the task text is the index."""
    import pyarrow as pa

    table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                      'task': pa.array(tasks, pa.string())})
    pandas_meta = {
        'index_columns': ['task'], 'column_indexes': [], 'creator': {'library': 'pyarrow'},
        'columns': [
            {'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
             'numpy_type': 'int64', 'metadata': None},
            {'name': 'task', 'field_name': 'task', 'pandas_type': 'unicode',
             'numpy_type': 'object', 'metadata': None}]}
    _write_parquet(table.replace_schema_metadata({b'pandas': json.dumps(pandas_meta).encode()}),
                   path)


def _write_parquet(table: Any, path: Path) -> None:
    """Write beside ``path`` and move into place: a hard-linked source is never written to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp')
    parquet().write_table(table, tmp, compression='snappy')
    os.replace(tmp, path)


def _write_json(path: Path, data: object) -> None:
    """lerobot's JSON format, moved into place (a hard-linked source is never written to)."""
    write_text(path, json.dumps(data, indent=4, ensure_ascii=False) + '\n')


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
