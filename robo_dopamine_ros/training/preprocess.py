"""Step 0: keyframe-based frame sampling and frame extraction (upstream ``0_preprocess_data``).

Per episode: validate the keyframes, compute ``sample_frames.json`` (docs/upstream.md §8.2), and
write as JPEG only the frames step 1 can put in a sample: the sampled ids and, for each, the two
candidate AFTER frames of a zero-hop sample. Upstream extracts every frame of every camera
(~3,800 JPEGs for the 42 s example episode, of which ~200 are ever used).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..core.errors import ConfigError
from ..core.names import KEYFRAMES_FILE, TASK_FILE, UPSTREAM_CAMERAS
from ..files.outputs import output_folder, write_json, written
from .keyframes import (
    Segment,
    load_instructions,
    load_keyframes,
    sample_frame_ids,
    zero_hop_afters,
)
from .layout import SAMPLE_FRAMES_FILE, frame_id, frame_name, map_episodes
from .sources import OpenedEpisode, RawEpisode, open_episode

log = logging.getLogger(__name__)

#: Step 1 needs at least 3 sampled frames (REF START, one inner frame, REF END).
MIN_SAMPLE_FRAMES = 3


@dataclass(frozen=True)
class PreprocessConfig:
    """Step 0 settings.

    Attributes:
        out: The converted dataset directory (upstream ``train_data``).
        sample_factor: About one sampled frame per this many annotated frames (upstream 20;
            at 30 fps that is 1.5 samples per second).
        jpeg_quality: Quality of the extracted frames (OpenCV's default, as upstream).
        workers: Parallel processes (``None``: one per CPU).
        progress: Show a progress bar.
    """

    out: Path
    sample_factor: int = 20
    jpeg_quality: int = 95
    workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if (not isinstance(self.sample_factor, int) or isinstance(self.sample_factor, bool)
                or self.sample_factor < 1):
            raise ConfigError(f'sample_factor must be a positive integer, got '
                              f'{self.sample_factor!r}')
        if not isinstance(self.jpeg_quality, int) or not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f'jpeg_quality must be an integer in [1, 100], got '
                              f'{self.jpeg_quality!r}')


@dataclass(frozen=True)
class EpisodeSummary:
    """What step 0 did for one episode."""

    name: str
    num_frames: int
    sample_frames: int
    frames_written: int


def preprocess(episodes: Sequence[RawEpisode], config: PreprocessConfig) -> list[EpisodeSummary]:
    """Convert raw episodes into the upstream training layout under ``config.out``.

    Re-running is safe: each episode's folder is replaced whole, not added to; a failed
    episode leaves nothing half-written, and a run that fails leaves no ``out`` it created empty.

    Raises:
        ConfigError: Two episodes share a name, or an episode's annotations are malformed
            (overlapping or out-of-range keyframes, bad instructions) or a camera is missing.
        ImageError: A frame cannot be decoded.
    """
    names = [ep.name for ep in episodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f'episode names must be unique in one dataset, got {duplicates!r} '
                          'more than once')
    with output_folder(config.out):
        summaries = map_episodes(functools.partial(_convert, config=config), list(episodes),
                                 config.workers, 'preprocess', config.progress)
    shared = {tuple(load_instructions([config.out / n / TASK_FILE])) for n in names}
    if len(shared) == 1:  # upstream's step 1 reads only the dataset-level file
        write_json(config.out / TASK_FILE, list(shared.pop()), indent=4)
    return summaries


def _convert(episode: RawEpisode, config: PreprocessConfig) -> EpisodeSummary:
    """Step 0 for one episode (runs in a worker process).

    The episode folder is built aside and replaces the old one only when complete
    (files/outputs.py): a frame that cannot be decoded leaves the previous run's folder, or none.
    """
    instructions = load_instructions(episode.instructions)
    with open_episode(episode) as frames:
        segments = load_keyframes(episode.keyframes, frames.num_frames)
        ids = sample_frame_ids(segments, config.sample_factor)
        if len(ids) < MIN_SAMPLE_FRAMES:
            log.warning('%s: only %d sampled frames; step 1 needs %d (lower sample_factor)',
                        episode.name, len(ids), MIN_SAMPLE_FRAMES)
        return _extract(episode, config, frames, segments, ids, instructions)


def _extract(episode: RawEpisode, config: PreprocessConfig, frames: OpenedEpisode,
             segments: list[Segment], ids: list[int],
             instructions: list[str]) -> EpisodeSummary:
    """Write the validated episode's folder: built aside, moved into place when complete."""
    wanted = sorted(set(ids).union(*zero_hop_afters(ids)))
    with written(config.out / episode.name) as out:
        count = 0
        for camera, cam in enumerate(UPSTREAM_CAMERAS):
            cam_dir = out / cam
            cam_dir.mkdir(parents=True)
            for frame, rgb in frames.frames(camera, wanted):
                Image.fromarray(rgb).save(cam_dir / frame_name(frame), format='JPEG',
                                          quality=config.jpeg_quality)
                count += 1
        num_frames = frames.num_frames
        write_json(out / KEYFRAMES_FILE, [s.to_json() for s in segments], indent=4)
        write_json(out / TASK_FILE, instructions, indent=4)
        write_json(out / SAMPLE_FRAMES_FILE, [frame_id(i) for i in ids], indent=4)
    return EpisodeSummary(episode.name, num_frames, len(ids), count)
