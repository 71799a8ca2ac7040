"""Robo-Dopamine-Bench on disk: the upstream input layout and the upstream output layout.

Input (docs/upstream.md §7.1): ``jsons/<dataset>.json`` holds two parallel lists,
``sample_path_list`` (episode paths relative to ``images/``) and ``sample_path_task``
(instructions); an episode dir holds ``cam_high/``, ``cam_left_wrist/``, ``cam_right_wrist/`` of
``.png``/``.jpg`` frames sorted by name. An episode path containing ``egodex`` is front-only:
upstream passes ``cam_high`` for all three views, which is the engine's single-view layout.

Output (upstream's, so its readers work): per dataset and direction a run dir with
``sample.json`` and ``pred_<backend>.json``; ``<out>/<dataset>/voc_positive|voc_negative/
result_interval_<I>_voc±_<avg>.json``; ``<out>/summary_voc.json``. One deliberate difference:
upstream names a run dir by its start time to the second (two episodes started within a second
overwrite each other); here it is named after the episode, which also makes reruns resumable.
The image paths in ``sample.json`` are the source frames (upstream copies them to ``.cache/``
first). Per-episode records for resuming live in ``<out>/<dataset>/episodes/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.names import UPSTREAM_CAMERAS
from ..files.frames import FrameSource, open_frames

FRONT, LEFT, RIGHT = UPSTREAM_CAMERAS
#: Upstream's default evaluation list (``--evaluation_list``).
UPSTREAM_DATASETS: tuple[str, ...] = (
    'agibot_test_100', 'droid_oxe_test_100', 'galaxea_r1lite_test_100', 'human_egodex_test_100',
    'libero_test_100', 'robocasa_test_100')
DIRECTIONS = {False: 'voc_positive', True: 'voc_negative'}


@dataclass(frozen=True)
class EpisodeEntry:
    """One line of a dataset index."""

    dataset: str
    name: str
    task: str

    @property
    def slug(self) -> str:
        """A file-name-safe, unique-per-dataset form of the episode path."""
        return re.sub(r'[^A-Za-z0-9._-]+', '_', self.name.strip('/').replace('/', '__'))

    @property
    def single_view(self) -> bool:
        """Upstream's rule: an ``egodex`` episode has the front camera only."""
        return 'egodex' in self.name


class EpisodeDataError(ConfigError):
    """An episode's frames cannot be evaluated (missing or mismatched camera folders)."""


def dataset_names(input_json_dir: Path, requested: tuple[str, ...] | None) -> list[str]:
    """The datasets to evaluate: ``requested``, or every ``*.json`` in the directory, sorted
    (for the real benchmark that is upstream's list, in upstream's order).

    Raises:
        ConfigError: The directory or a requested index file does not exist.
    """
    if not input_json_dir.is_dir():
        raise ConfigError(f'input json dir does not exist: {str(input_json_dir)!r}')
    names = list(requested) if requested else sorted(p.stem for p in
                                                     input_json_dir.glob('*.json'))
    missing = [n for n in names if not (input_json_dir / f'{n}.json').is_file()]
    if missing or not names:
        raise ConfigError(f'no dataset index {missing or "*.json"} in '
                          f'{str(input_json_dir)!r}')
    return names


def read_dataset(input_json_dir: Path, dataset: str) -> list[EpisodeEntry]:
    """The episodes of ``jsons/<dataset>.json``, in file order.

    Raises:
        ConfigError: The file is not a dataset index.
    """
    path = input_json_dir / f'{dataset}.json'
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
        paths, tasks = data['sample_path_list'], data['sample_path_task']
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f'{str(path)!r} is not a dataset index with sample_path_list and '
                          f'sample_path_task: {exc}') from exc
    if len(paths) != len(tasks):
        raise ConfigError(f'{str(path)!r}: {len(paths)} episode paths but {len(tasks)} tasks')
    return [EpisodeEntry(dataset, str(p), str(t)) for p, t in zip(paths, tasks, strict=True)]


def open_entry(base_dir: Path, entry: EpisodeEntry) -> list[FrameSource | None]:
    """The episode's ``[front, left, right]`` frame sources (wrists None when front-only).

    Raises:
        EpisodeDataError: A camera folder is missing or empty, or the folders differ in length
            (upstream asserts equal counts and skips the episode).
    """
    root = base_dir / entry.name
    cameras = (FRONT,) if entry.single_view else (FRONT, LEFT, RIGHT)
    missing = [cam for cam in cameras if not (root / cam).is_dir()]
    if missing:
        raise EpisodeDataError(f'camera folder(s) missing: {", ".join(missing)} in '
                               f'{str(root)!r}')
    sources: list[FrameSource] = []
    try:
        for cam in cameras:
            sources.append(open_frames(root / cam))
    except ConfigError as exc:
        raise EpisodeDataError(str(exc)) from exc
    counts = {cam: len(src) for cam, src in zip(cameras, sources, strict=True)}
    if len(set(counts.values())) > 1:
        raise EpisodeDataError('camera folders differ in length: ' + ', '.join(
            f'{cam}={n}' for cam, n in counts.items()))
    return [*sources, None, None] if entry.single_view else list(sources)


def run_dir(out_root: Path, entry: EpisodeEntry, inverse: bool) -> Path:
    """Where one direction's ``sample.json`` and ``pred_<backend>.json`` of an episode go."""
    return out_root / entry.dataset / DIRECTIONS[inverse] / entry.slug


def record_path(out_root: Path, entry: EpisodeEntry) -> Path:
    """The episode's record: written last, so its presence means the episode is finished."""
    return out_root / entry.dataset / 'episodes' / f'{entry.slug}.json'


def result_path(out_root: Path, dataset: str, inverse: bool, interval: int,
                avg: float) -> Path:
    """Upstream's per-dataset result file name, average included."""
    sign = '-' if inverse else '+'
    return (out_root / dataset / DIRECTIONS[inverse]
            / f'result_interval_{interval}_voc{sign}_{avg:.6f}.json')


def read_saved_json(path: Path) -> Any | None:
    """The JSON in ``path``; None when it is missing or unreadable (then it is redone)."""
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
