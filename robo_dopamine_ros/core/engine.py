"""The one episode engine: samples in, progress and shaped reward out.

Every adapter — the ROS node, bag replay, the video pipeline, the benchmark — drives this class;
none re-implements sampling anchors, fusion or shaping. Rules, written once here:

* Sampling is named here (``EngineConfig.sampling``): online adapters ask ``wants(stamp)``
  (header-time grid, restarted with each episode) before converting images; offline adapters
  ask ``frame_indices(n)`` (upstream frame interval + last frame, or the benchmark's evenly
  spaced indices).
* ``start(task, goal)`` opens an episode; the **first** ``step`` after it is the START sample:
  it becomes REF START (its front view) and the first BEFORE, gets progress 0, no query, no reward.
  Time-reversed evaluation (the benchmark's ``voc-``, docs/upstream.md §7.2) feeds an episode from
  its end backwards: there ``start`` takes the episode's real first frame as ``ref_start`` and the
  START sample's known progress as ``initial_progress`` (1.0), so the same incremental chain runs
  down.
* Each later ``step`` builds the requested queries (incremental: BEFORE = the last sample that
  advanced the state; forward: BEFORE = START; backward: BEFORE = the goal in all three slots;
  REF START / REF END = START front / goal) and sends them to the backend as ONE batch
  (identical queries, e.g. incremental and forward right after START, are sent once).
* A step whose readings are all unusable is *held*: progress repeats, the BEFORE sample of the
  incremental reading stays, so the next hop spans the gap. Backend exceptions are caught, logged
  and produce a held, invalid result: one bad answer never stops a running node.
* ``done`` latches at the first success (Φ >= 1 - δ) until ``reset``; scoring goes on after it,
  under the terminal rule of :mod:`.shaping` (``r_gold`` once, at the terminal transition).
* Each episode has a task monitor (:mod:`.monitor`): every result carries its ``task_status`` and,
  at the sample where it changed, ``task_event`` (why), so every adapter reports the same status.
* At the START sample REF START is compared with the goal (:mod:`.start_goal`); an episode whose
  goal looks like its start is flagged (``start_is_goal``, a note in every ``reason``, one warning)
  and fused by the configured policy (default: the incremental reading alone).
* An episode fuses exactly the modes it asks (backward is dropped without a real goal, forward
  and backward under the start ≈ goal policy), so a mode left out never makes a step partial.
* ``set_task``/``set_goal`` mid-episode end it and open a new one (new episode id) whose START is
  the next sample: progress towards a different objective is not comparable, so the potential is
  never carried across.
* Stamps (ns; header time online, frame time offline) must be >= 0 and strictly increase within
  an episode (``StampError``). An unset ROS header (stamp 0) is the node's to detect: offline time
  legitimately starts at 0.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from .batch_ask import ask_batch
from .errors import ConfigError, StampError, coerce_enum
from .images import blank_goal, prepare
from .monitor import MonitorConfig, TaskMonitor, TaskStatus
from .parsing import ParseStatus, ScoreReading
from .profiles import GENERIC, CheckpointProfile
from .progress import (
    FusionConfig,
    FusionMethod,
    ModeReading,
    ProgressState,
    StepStatus,
    fuse_step,
)
from .prompt import check_task
from .result import StepResult
from .sampling import SamplingConfig
from .shaping import ShapingConfig, shape
from .start_goal import StartGoalConfig, StartGoalPolicy, changed_fraction
from .types import (
    ALL_MODES,
    GrmBackend,
    ImageKey,
    KeyedImage,
    Mode,
    Query,
    Views,
)
from .views import layout_name, map_views

log = logging.getLogger(__name__)

ImageLike = np.ndarray | Image.Image


class MissingGoal(str, enum.Enum):
    """What to do without a goal image on a checkpoint not trained for it."""

    REFUSE = 'refuse'
    BLANK = 'blank'


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Engine settings; the checkpoint profile supplies prompt variant and pixel limits."""

    fusion: FusionConfig = field(default_factory=FusionConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    lenient_parse: bool = True
    upstream_zero: bool = False
    missing_goal: MissingGoal = MissingGoal.REFUSE
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    start_goal: StartGoalConfig = field(default_factory=StartGoalConfig)

    def __post_init__(self) -> None:
        coerce_enum(self, 'missing_goal', MissingGoal)


@dataclass(frozen=True)
class Sample:
    """One synchronized sample: header time and RGB uint8 views (wrists optional)."""

    stamp_ns: int
    front: ImageLike
    left: ImageLike | None = None
    right: ImageLike | None = None


@dataclass
class _Episode:
    episode_id: str
    task: str
    goal: KeyedImage
    fusion: FusionConfig            # the engine's, restricted to the modes this episode asks
    monitor: TaskMonitor
    ref_start: KeyedImage | None = None
    start: Views | None = None
    before: Views | None = None
    before_stamp: int | None = None
    last_stamp: int = -1
    step: int = 0
    state: ProgressState = field(default_factory=ProgressState)
    done: bool = False
    start_goal_note: str = ''       # set when the goal looks like REF START

    @property
    def modes(self) -> tuple[Mode, ...]:
        return self.fusion.modes


class EpisodeEngine:
    """Turns a stream of samples of one episode into ``StepResult``s."""

    def __init__(self, backend: GrmBackend, config: EngineConfig | None = None,
                 profile: CheckpointProfile = GENERIC) -> None:
        self.backend = backend
        self.config = config or EngineConfig()
        self.profile = profile
        self._episode: _Episode | None = None
        self._count = 0
        self._sampler = self.config.sampling.header_sampler()

    # -- episode control -------------------------------------------------------------------

    @property
    def episode_id(self) -> str | None:
        return self._episode.episode_id if self._episode else None

    @property
    def active_modes(self) -> tuple[Mode, ...]:
        """The modes actually queried (backward is dropped without a real goal)."""
        return self._episode.modes if self._episode else self.config.fusion.modes

    def start(self, task: str, goal: ImageLike | None = None,
              episode_id: str | None = None, *, ref_start: ImageLike | None = None,
              initial_progress: float = 0.0) -> str:
        """Open an episode; the next ``step`` is its START sample. Returns the episode id.

        Args:
            task: The instruction.
            goal: REF END and the backward anchor (see ``MissingGoal`` when absent).
            episode_id: Id for results and image keys (default ``episode-NNNN``).
            ref_start: REF START image when it is not the START sample's front view: a
                time-reversed pass starts at the episode's end but still shows the model the
                episode's real first frame as "task just starting" (docs/upstream.md §7.2
                ``voc-``).
            initial_progress: The START sample's progress, in [0, 1]: 0 for a real start, 1.0
                when a time-reversed pass starts at a completed end. Applies to this episode
                only (``reset``/``set_task``/``set_goal`` start again from 0). Not available
                with ``FusionMethod.UPSTREAM``, whose step-0 rule ``p = H`` presumes 0.

        Raises:
            ConfigError: Invalid task, goal rules, or initial progress.
        """
        check_task(task)
        progress = float(initial_progress)
        if not 0.0 <= progress <= 1.0:
            raise ConfigError(f'initial_progress must be in [0, 1], got {initial_progress!r}')
        if progress and self.config.fusion.method is FusionMethod.UPSTREAM:
            raise ConfigError('initial_progress needs the paper fusion: upstream parity chains '
                              'start at 0 (step-0 rule p = H)')
        eid = episode_id or f'episode-{self._count + 1:04d}'
        goal_image, modes = self._goal(eid, goal)      # may refuse: then no id is used up
        self._count += 1
        ref = None if ref_start is None else KeyedImage(
            ImageKey(eid, 'ref_start', 0), prepare(ref_start, self.profile.pixel_limits))
        monitor = TaskMonitor(self.config.monitor, 1.0 - self.config.shaping.delta, progress)
        self._episode = _Episode(eid, task, goal_image, self._fusion(modes), monitor,
                                 ref_start=ref,
                                 state=ProgressState(fused=progress, fused_raw=progress))
        self._sampler.reset()
        return eid

    def wants(self, stamp_ns: int) -> bool:
        """Online sampling: is a sample with this header stamp due (``header_time`` grid)?

        Call it for every synchronized set before converting images; a False for a stamp that
        does not increase is for the caller to report (``step`` would raise ``StampError``).
        """
        return self._sampler.accept(int(stamp_ns))

    def frame_indices(self, num_frames: int) -> list[int]:
        """Offline sampling: the frame indices of an ``num_frames``-long episode to score."""
        return self.config.sampling.indices(num_frames)

    def reset(self, episode_id: str | None = None) -> str:
        """End the episode and open a new one with the same task and goal."""
        ep = self._require()
        goal = None if ep.goal.key.role == 'blank' else ep.goal.pixels
        return self.start(ep.task, goal, episode_id)

    def set_task(self, task: str, episode_id: str | None = None) -> str:
        """Change the task: starts a new episode (see module docstring)."""
        ep = self._require()
        goal = None if ep.goal.key.role == 'blank' else ep.goal.pixels
        return self.start(task, goal, episode_id)

    def set_goal(self, goal: ImageLike | None, episode_id: str | None = None) -> str:
        """Change the goal image: starts a new episode (see module docstring)."""
        return self.start(self._require().task, goal, episode_id)

    # -- scoring ---------------------------------------------------------------------------

    def step(self, sample: Sample) -> StepResult:
        """Score one sample of the current episode."""
        ep = self._require()
        stamp = int(sample.stamp_ns)
        if stamp < 0:
            raise StampError(f'sample stamp must be >= 0 ns, got {stamp!r}')
        if stamp <= ep.last_stamp:
            raise StampError(f'sample stamp {stamp} does not increase (last {ep.last_stamp}) '
                             f'in episode {ep.episode_id!r}')
        views = self._views(ep.episode_id, sample)
        layout = layout_name(sample.left is not None, sample.right is not None)
        ep.last_stamp = stamp
        if ep.start is None:
            ep.start = ep.before = views
            ep.before_stamp = stamp
            return self._start_result(ep, stamp, layout, self._check_start_goal(ep, views))

        queries = self._queries(ep, views)
        scores, latency, failure = ask_batch(self.backend, queries,
                                             lenient=self.config.lenient_parse,
                                             upstream_zero=self.config.upstream_zero)
        fused = fuse_step(ep.state, scores, ep.fusion)
        reason = '; '.join(r for r in (f'backend failed: {failure}' if failure else '',
                                       fused.reason, ep.start_goal_note) if r)
        valid = fused.valid and not failure
        before_stamp = ep.before_stamp
        assert before_stamp is not None
        period_s = (stamp - before_stamp) / 1e9
        shaping = self.config.shaping
        reward = shape(ep.state.fused, fused.progress, shaping.sample_gamma(period_s),
                       delta=shaping.delta, succeeded_before=ep.done,
                       terminal_potential=shaping.terminal_potential)
        ep.done = ep.done or reward.success
        ep.step += 1
        if fused.status is not StepStatus.HELD:
            ep.state = fused.state
            ep.before, ep.before_stamp = views, stamp
        task = ep.monitor.update(fused.progress, valid)
        return StepResult(
            episode_id=ep.episode_id, step=ep.step, task=ep.task, stamp_before_ns=before_stamp,
            stamp_after_ns=stamp, progress=fused.progress, progress_raw=fused.progress_raw,
            readings=fused.readings, consistency_weight=fused.consistency_weight,
            status=fused.status, valid=valid, reason=reason, reward=reward, done=ep.done,
            latency_s=latency, model_id=self.backend.model_id, view_layout=layout,
            task_status=task.status, task_event=task.event,
            start_is_goal=bool(ep.start_goal_note))

    # -- internals -------------------------------------------------------------------------

    def _require(self) -> _Episode:
        if self._episode is None:
            raise ConfigError('no episode: call start(task, goal) first')
        return self._episode

    def _fusion(self, modes: tuple[Mode, ...]) -> FusionConfig:
        """The fusion of an episode that asks ``modes`` (a subset of the configured ones)."""
        fusion = self.config.fusion
        if modes == fusion.modes:
            return fusion
        both = {Mode.FORWARD, Mode.BACKWARD} <= set(modes)
        return replace(fusion, modes=modes, consistency=fusion.consistency and both)

    def _check_start_goal(self, ep: _Episode, start: Views) -> float | None:
        """Compare REF START with the goal; apply the start ≈ goal policy (module docstring)."""
        check = self.config.start_goal
        if ep.goal.key.role != 'goal' or check.threshold == 0:
            return None
        ref = ep.ref_start or start.front
        distance = changed_fraction(ref.pixels, ep.goal.pixels)
        if not check.matches(distance):
            return distance
        policy = check.policy
        if policy is StartGoalPolicy.INCREMENTAL and Mode.INCREMENTAL in ep.modes:
            ep.fusion = self._fusion((Mode.INCREMENTAL,))
            action = 'incremental reading only'
        else:
            action = 'fused as configured'
        ep.start_goal_note = (f'start ~ goal ({distance:.1%} of the image changed, < '
                              f'{check.threshold:.1%}): {action}')
        log.warning('episode %r: the goal image looks like the start (%.1f%% of the image '
                    'changed): forward/backward readings cannot show progress; %s',
                    ep.episode_id, 100 * distance, action)
        return distance

    def _goal(self, eid: str, goal: ImageLike | None) -> tuple[KeyedImage, tuple[Mode, ...]]:
        limits = self.profile.pixel_limits
        modes = self.config.fusion.modes
        if goal is not None:
            return KeyedImage(ImageKey(eid, 'goal', 0), prepare(goal, limits)), modes
        if not self.profile.goalless and self.config.missing_goal is MissingGoal.REFUSE:
            raise ConfigError(
                f'checkpoint profile {self.profile.name!r} needs a goal image (REF END): give '
                'one, or offline use the last front frame of the episode; missing_goal=blank '
                'runs without it (blank goal, backward mode disabled)')
        if not self.profile.goalless:
            log.warning('profile %r was not trained without a goal; using a blank goal image',
                        self.profile.name)
        kept = tuple(m for m in modes if m is not Mode.BACKWARD)
        if Mode.BACKWARD in modes:
            log.warning('no goal image: backward mode disabled for episode %r', eid)
        if not kept:
            raise ConfigError('without a goal image only the backward mode was requested')
        if self.config.fusion.consistency:
            raise ConfigError('the consistency check needs the backward mode and so a goal image')
        return KeyedImage(ImageKey(eid, 'blank', 0), prepare(blank_goal(), limits)), kept

    def _views(self, eid: str, sample: Sample) -> Views:
        limits = self.profile.pixel_limits
        if not self.profile.single_view and (sample.left is None or sample.right is None):
            raise ConfigError(f'checkpoint profile {self.profile.name!r} needs three views')
        images: dict[str, KeyedImage] = {}
        for role, image in (('front', sample.front), ('left', sample.left),
                            ('right', sample.right)):
            if image is not None:
                images[role] = KeyedImage(ImageKey(eid, role, int(sample.stamp_ns)),
                                          prepare(image, limits))
        front, left, right = map_views(images['front'], images.get('left'), images.get('right'))
        return Views(front, left, right)

    def _queries(self, ep: _Episode, after: Views) -> dict[Mode, Query]:
        assert ep.start is not None and ep.before is not None
        goal = ep.goal
        befores = {Mode.INCREMENTAL: ep.before.as_tuple(), Mode.FORWARD: ep.start.as_tuple(),
                   Mode.BACKWARD: (goal, goal, goal)}
        variant = self.profile.prompt_variant
        ref_start = ep.ref_start or ep.start.front
        return {m: Query(ep.task, (ref_start, goal, *befores[m], *after.as_tuple()), m, variant)
                for m in ALL_MODES if m in ep.modes}

    def _start_result(self, ep: _Episode, stamp: int, layout: str,
                      start_goal_distance: float | None) -> StepResult:
        readings = tuple(ModeReading(m, ScoreReading('', ParseStatus.SKIPPED)) for m in ALL_MODES)
        progress = ep.state.fused
        reason = ('episode start: progress 0 by definition' if progress == 0.0
                  else f'episode start: initial progress {progress:g} given')
        if ep.start_goal_note:
            reason = f'{reason}; {ep.start_goal_note}'
        return StepResult(
            episode_id=ep.episode_id, step=0, task=ep.task, stamp_before_ns=None,
            stamp_after_ns=stamp, progress=progress, progress_raw=progress, readings=readings,
            consistency_weight=None, status=StepStatus.OK, valid=True, reason=reason,
            reward=None, done=False, latency_s=0.0, model_id=self.backend.model_id,
            view_layout=layout, task_status=TaskStatus.RUNNING, task_event='',
            start_is_goal=bool(ep.start_goal_note), start_goal_distance=start_goal_distance)


def score_samples(engine: EpisodeEngine, samples: Sequence[Sample]) -> list[StepResult]:
    """Step the engine through ``samples`` (for offline adapters and tests)."""
    return [engine.step(s) for s in samples]
