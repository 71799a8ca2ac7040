"""Score every episode of a LeRobot v3 dataset: per-frame progress and reward in one parquet.

Each episode goes through the offline episode loop (:func:`offline.episode.score_frames`: the
engine's frame-interval samples, the last frame included), so a dataset episode scores exactly
as the same frames would as videos with ``robo-dopamine episode``. Frames are decoded with PyAV
from the episode's time range in its multi-episode video file.

The output has one row per dataset frame of the scored episodes (:mod:`.labels`: progress,
the samples' rewards and each frame's ``next_*`` transition); the run's settings are stored in
the parquet's schema metadata (``robo_dopamine``). Beside it goes the progress sidecar in
LeRobot's reward-model schema; ``write_dataset`` adds a copy with LeRobot's ``next.*`` features.

Bad input is refused before anything is written: every scored episode's metadata, data rows and
video files are checked when the relabeller is made (a file that turns out corrupt while
decoding is an error naming it; finished episodes stay in the parts folder for a resume).

Resuming: each finished episode is written whole (atomically) into ``.<out name>.parts/`` beside
the output; a re-run with the same settings skips the episodes found there or in an existing
output, then writes the output whole and removes the parts. Other settings are refused rather
than mixed into one file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.engine import EpisodeEngine
from ..core.errors import ConfigError
from ..core.profiles import CheckpointProfile
from ..core.result import StepResult
from ..core.types import GrmBackend
from ..files.frames import read_image
from ..files.outputs import write_text, written
from ..offline.episode import EpisodeOptions, engine_config, score_frames
from .labels import COPY_FEATURES, copy_labels, episode_rows, sidecar_table
from .layout import TOLERANCE_S, EpisodeMeta, FrameTable, LeRobotV3, parquet, read_table
from .video import decode_at
from .writer import check_copy_target, copy_with_features

log = logging.getLogger(__name__)

#: Schema metadata key holding the run's settings (JSON).
SETTINGS_KEY = b'robo_dopamine'
#: Output format version, in the settings: an output of another format is not resumed into.
FORMAT = 2


@dataclass(frozen=True, kw_only=True)
class RelabelOptions:
    """What to score and how.

    Cameras are dataset video keys (``front`` required; no wrists = single view). The goal
    (REF END) is one of: ``goal`` (an image file), ``goal_episode`` (that episode's last front
    frame, for every episode), ``goal_per_episode`` (each episode's own last front frame: for
    demonstrations only — a failed rollout would then end near 1), or none of them where the
    checkpoint profile is goal-less.
    """

    front: str
    left: str | None = None
    right: str | None = None
    goal: Path | None = None
    goal_episode: int | None = None
    goal_per_episode: bool = False
    task: str | None = None                 # default: each episode's task in the dataset
    episodes: tuple[int, ...] | None = None  # default: all
    scoring: EpisodeOptions = field(default_factory=EpisodeOptions)
    write_dataset: Path | None = None
    sidecar: Path | None = None             # default: <out stem>.progress.parquet beside out


@dataclass(frozen=True)
class RelabelledEpisode:
    episode_index: int
    task: str
    frames: int
    samples: int
    valid: int
    final_progress: float


@dataclass(frozen=True)
class RelabelSummary:
    out: Path
    episodes: list[RelabelledEpisode]      # scored in this run (skipped ones are not listed)
    skipped: list[int]
    sidecar: Path
    dataset: Path | None


class Relabeller:
    """Scores the episodes of one dataset with one backend (see module docstring)."""

    def __init__(self, dataset: str | Path, backend: GrmBackend, profile: CheckpointProfile,
                 options: RelabelOptions) -> None:
        self.ds = LeRobotV3(dataset)
        self.options = options
        self.keys = (options.front, options.left, options.right)
        for key in self.keys:
            if key is not None:
                self.ds.require_video_key(key)
        goals = sum((options.goal is not None, options.goal_episode is not None,
                     options.goal_per_episode))
        if goals > 1:
            raise ConfigError('give one goal: --goal, --goal-episode or --goal-per-episode')
        if goals == 0 and not profile.goalless:
            raise ConfigError(
                f'checkpoint profile {profile.name!r} needs a goal image (REF END): give '
                '--goal FILE, --goal-episode N (its last front frame) or --goal-per-episode '
                '(each episode\'s own last frame; demonstrations only)')
        self.episodes = (list(options.episodes) if options.episodes is not None
                         else self.ds.episode_indices)
        self.metas = {e: self.ds.episode(e) for e in self.episodes}     # range check first
        if options.goal_episode is not None:
            self.metas.setdefault(options.goal_episode, self.ds.episode(options.goal_episode))
        if options.write_dataset is not None:          # refused before hours of scoring
            check_copy_target(self.ds, Path(options.write_dataset), COPY_FEATURES)
            self.metas.update({e: self.ds.episode(e) for e in self.ds.episode_indices})
            _ = self.ds.tasks                # the copy carries it: a corrupt one is refused
        self.frames = {e: self.ds.frames(meta) for e, meta in self.metas.items()}
        for meta in self.metas.values():
            for key in filter(None, self.keys):
                if not meta.videos[key].path.is_file():
                    raise ConfigError(f'video of {key}, episode {meta.index} missing: '
                                      f'{str(meta.videos[key].path)!r}')
        self.engine = EpisodeEngine(backend, engine_config(options.scoring), profile)
        self.settings = self._settings(backend, profile)

    # -- settings and resume ---------------------------------------------------------------

    def _settings(self, backend: GrmBackend, profile: CheckpointProfile) -> dict[str, Any]:
        o, s = self.options, self.options.scoring
        if o.goal is not None:
            goal = f'file sha256:{hashlib.sha256(Path(o.goal).read_bytes()).hexdigest()}' \
                if Path(o.goal).is_file() else f'file {o.goal}'
        elif o.goal_episode is not None:
            goal = f'episode {o.goal_episode}'
        else:
            goal = 'per episode' if o.goal_per_episode else 'none'
        return {'format': FORMAT, 'dataset': str(self.ds.root.resolve()),
                'model': backend.model_id,
                'profile': profile.name, 'cameras': list(self.keys), 'goal': goal,
                'task': o.task, 'mode': str(getattr(s.mode, 'value', s.mode)),
                'frame_interval': s.frame_interval, 'consistency': s.consistency,
                'upstream_zero': s.upstream_zero, 'shaping': repr(s.shaping)}

    def _check_settings(self, found: dict[str, Any], where: Path) -> None:
        if found != self.settings:
            diff = sorted(k for k in {*found, *self.settings}
                          if found.get(k) != self.settings.get(k))
            raise ConfigError(f'{str(where)!r} was written with other settings ({diff}); '
                              'choose another --out or delete it')

    def finished(self, out: Path) -> dict[int, Any]:
        """Episode -> its rows (arrow table) already scored in ``out`` or its parts folder."""
        done: dict[int, Any] = {}
        if out.is_file():
            table = read_table(out)
            meta = (table.schema.metadata or {}).get(SETTINGS_KEY)
            if meta is None:
                raise ConfigError(f'{str(out)!r} exists and is not a relabel-lerobot output')
            self._check_settings(json.loads(meta), out)
            for e in sorted(set(table.column('episode_index').to_pylist())):
                done[e] = table.filter(_equal(table, 'episode_index', e))
        parts = _parts_dir(out)
        files = sorted(parts.glob('episode_*.parquet'))
        if files:                          # settings of a run that finished nothing don't bind
            settings = parts / 'settings.json'
            found = json.loads(settings.read_text(encoding='utf-8')) if settings.is_file() else {}
            self._check_settings(found, parts)
            for path in files:
                done[int(path.stem.split('_')[1])] = read_table(path)
        return done

    # -- scoring ---------------------------------------------------------------------------

    def pending_samples(self, out: str | Path) -> int:
        """How many samples the episodes still to score into ``out`` take (a bar's total)."""
        done = self.finished(Path(out))
        return sum(len(self.engine.frame_indices(self.metas[e].length))
                   for e in self.episodes if e not in done)

    def run(self, out: str | Path,
            on_sample: Callable[[StepResult], None] | None = None) -> RelabelSummary:
        out = Path(out)
        sidecar = self.options.sidecar or out.with_name(f'{out.stem}.progress.parquet')
        if sidecar.resolve() == out.resolve():
            raise ConfigError(f'the progress sidecar would overwrite the output {str(out)!r}')
        done = self.finished(out)
        if self.options.write_dataset is not None:
            missing = sorted(set(self.ds.episode_indices) - set(done) - set(self.episodes))
            if missing:
                raise ConfigError(f'--write-dataset needs every episode scored; not scored: '
                                  f'{missing[:10]}{" ..." if len(missing) > 10 else ""}')
        goal = self._shared_goal()
        parts = _parts_dir(out)
        summaries, skipped = [], []
        pq = parquet()
        for e in self.episodes:
            if e in done:
                skipped.append(e)
                continue
            table, summary = self._score(self.metas[e], goal, on_sample)
            write_text(parts / 'settings.json', json.dumps(self.settings, indent=1) + '\n')
            with written(parts / f'episode_{e:06d}.parquet') as tmp:
                pq.write_table(table, tmp)
            done[e] = table
            summaries.append(summary)
        import pyarrow as pa

        merged = pa.concat_tables([done[e] for e in sorted(done)]).sort_by('index')
        settings = json.dumps(self.settings).encode()
        merged = merged.replace_schema_metadata({SETTINGS_KEY: settings})
        with written(out) as tmp:
            pq.write_table(merged, tmp)
        with written(sidecar) as tmp:
            pq.write_table(sidecar_table(merged, self.settings['model'], settings), tmp)
        if parts.exists():
            shutil.rmtree(parts)
        dataset = None
        if self.options.write_dataset is not None:
            dataset = self._write_dataset(merged)
        return RelabelSummary(out, summaries, skipped, sidecar, dataset)

    def _shared_goal(self) -> np.ndarray | None:
        o = self.options
        if o.goal is not None:
            return read_image(o.goal)
        if o.goal_episode is not None:
            meta = self.metas[o.goal_episode]
            return self._decode(meta, self.frames[meta.index], o.front, [meta.length - 1])[0]
        return None

    def _decode(self, meta: EpisodeMeta, frames: FrameTable, key: str,
                indices: list[int]) -> list[np.ndarray]:
        video = meta.videos[key]
        times = [video.from_s + float(frames.timestamp[i]) for i in indices]
        return decode_at(video.path, times, TOLERANCE_S,
                         f'{key}, episode {meta.index}, frames {indices[0]}..{indices[-1]}')

    def _score(self, meta: EpisodeMeta, goal: np.ndarray | None,
               on_sample: Callable[[StepResult], None] | None) -> tuple[Any, RelabelledEpisode]:
        frames = self.frames[meta.index]
        task = self.options.task or self.ds.task_of(meta)
        indices = self.engine.frame_indices(meta.length)
        decoded = {key: dict(zip(indices, self._decode(meta, frames, key, indices), strict=True))
                   for key in self.keys if key is not None}
        front = decoded[self.options.front]
        if self.options.goal_per_episode:
            goal = front[meta.length - 1]

        def views(i: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
            return tuple(decoded[k][i] if k is not None else None          # type: ignore
                         for k in self.keys)

        self.engine.start(task, goal, episode_id=f'episode_{meta.index:06d}')
        results: dict[int, StepResult] = {}
        for idx, _, result in score_frames(self.engine, meta.length, views, self.ds.fps):
            results[idx] = result
            if on_sample:
                on_sample(result)
        table = episode_rows(meta.index, frames, results, self.ds.fps,
                             self.options.scoring.shaping.terminal_potential)
        last = results[indices[-1]]
        summary = RelabelledEpisode(meta.index, task, meta.length, len(results),
                                    sum(r.valid for r in results.values()), last.progress)
        return table, summary

    def _write_dataset(self, merged: Any) -> Path:
        target = self.options.write_dataset
        assert target is not None
        labels, features = copy_labels(merged)
        return copy_with_features(self.ds, target, labels, features)


def _parts_dir(out: Path) -> Path:
    return out.parent / f'.{out.name}.parts'


def _equal(table: Any, column: str, value: int) -> Any:
    import pyarrow.compute as pc

    return pc.equal(table.column(column), value)
