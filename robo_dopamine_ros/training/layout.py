"""The converted dataset's layout (upstream's ``train_data/``) and the pool that maps its episodes.

Layout written by step 0 and read by steps 1 and 2::

    <base>/task_instruction.json                  paraphrases shared by all episodes
    <base>/episode_XXX/annotated_keyframes.json   validated sub-task segments
    <base>/episode_XXX/sample_frames.json         sampled frame ids, 6-digit strings
    <base>/episode_XXX/task_instruction.json      optional per-episode paraphrases (ours)
    <base>/episode_XXX/<camera>/frame_NNNNNN.jpg  the frames samples use
    <base>/episode_XXX/train.json, info.txt       step 1 output
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..core.errors import ConfigError

log = logging.getLogger(__name__)

EPISODE_PREFIX = 'episode_'
SAMPLE_FRAMES_FILE = 'sample_frames.json'
TRAIN_FILE = 'train.json'
INFO_FILE = 'info.txt'

T = TypeVar('T')
R = TypeVar('R')


def frame_name(frame: int) -> str:
    """File name of an extracted frame (upstream: ``frame_000123.jpg``)."""
    return f'frame_{frame:06d}.jpg'


def frame_id(frame: int) -> str:
    """A frame id as ``sample_frames.json`` and the record ids spell it (6 digits)."""
    return f'{frame:06d}'


def episode_dirs(base: Path) -> list[Path]:
    """The ``episode_*`` directories of a converted dataset, sorted by name.

    Raises:
        ConfigError: ``base`` is not a directory or holds no episode.
    """
    if not base.is_dir():
        raise ConfigError(f'dataset directory does not exist: {str(base)!r}')
    dirs = sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith(EPISODE_PREFIX))
    if not dirs:
        raise ConfigError(f'no {EPISODE_PREFIX}* directories in {str(base)!r}; run '
                          '`robo-dopamine data preprocess` first')
    return dirs


def map_episodes(fn: Callable[[T], R], items: Sequence[T], workers: int | None,
                 desc: str, progress: bool = True) -> list[R]:
    """Apply ``fn`` to every episode, in parallel processes, with a progress bar.

    Results come back in the order of ``items`` whatever the completion order, so the output
    never depends on the number of workers. Processes are spawned, not forked: a fork of a
    parent that has started OpenCV or torch threads can deadlock.

    Args:
        fn: A module-level function (it is pickled to the workers).
        items: One entry per episode.
        workers: Process count; ``None`` is one per CPU, capped at ``len(items)``; 1 runs in
            this process (no pickling, easier debugging).
        desc: Progress bar label.
        progress: Show the progress bar.

    Raises:
        ConfigError: ``workers`` is not a positive integer. Exceptions of ``fn`` propagate.
    """
    from tqdm import tqdm

    if workers is None:
        workers = os.cpu_count() or 1
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f'workers must be a positive integer, got {workers!r}')
    workers = min(workers, len(items))
    with tqdm(total=len(items), desc=desc, unit='episode', disable=not progress) as bar:
        if workers <= 1:
            results = []
            for item in items:
                results.append(fn(item))
                bar.update()
            return results
        context = multiprocessing.get_context('spawn')
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(fn, item) for item in items]
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
            return [future.result() for future in futures]
