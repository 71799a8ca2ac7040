"""Bag replay: score a recorded rosbag2 offline exactly as the node would have scored it live.

Users evaluate a reward model on recorded episodes before they trust it on the robot, and relabel
old data with it. So replay feeds the bag's serialized messages, in bag order, to the node's own
sample pipeline (pipeline/): the node's parameters (:class:`NodeConfig`, from the same YAML file),
the same input (frame check, stamp rule with the bag's receive times as the node's clock, time
jumps starting a new episode, approximate-time synchronizer), the engine's header-time sampler
(``engine.wants``), the same decoding and the same engine. Only what cannot exist offline is left
out: receive-time staleness, the bounded queue (nothing is dropped), and the ``trigger=service``
mode (replay always scores on the interval grid).

Outputs, in ``out_dir``:

* ``results.jsonl`` / ``results.csv``: one row per scored sample, written as it is scored (a
  killed run leaves valid files), with ``frame_index`` (the front message's index in the bag),
  ``bag_time_ns`` and ``gt_progress`` besides the engine's record;
* ``progress.png`` (one episode) or ``progress_<episode_id>.png`` (several), written at the end,
  and ``summary.json`` (:mod:`.replay_summary`): per episode VOC (Spearman vs time order over the
  transitions, docs/upstream.md §7.2) of the fused and each mode's curve and, with ground truth,
  the error of the fused progress; the node's input counters and replay's; the error that
  stopped a broken bag;
* optionally a copy of the bag with the node's topics added (:mod:`.replay_bag`:
  ``<prefix>/progress``, ``/reward``, ``/episode``), each result stored at the bag time of the
  front frame it scores, so a viewer (Foxglove, ``ros2 bag play``) shows every reward beside its
  image.

Episodes: the bag is one episode unless split at a jump back in header time (as the node does),
at a gap of ``split_gap_s`` seconds between synchronized frames, or at the node's recorded
``~/episode`` START events (the first frame at or
after the event's stamp opens the new episode; a START event's task is used for its episode).

Ground truth: upstream keyframes (``--keyframes`` or ``annotated_keyframes.json`` in the bag
directory) give step-wise progress (docs/upstream.md §5.1) by front frame index; a synthetic bag's
``ground_truth.json`` gives the rendered per-frame progress, interpolated at the sample stamps.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import numpy as np

from ..bags.msgtypes import COMPRESSED_IMAGE, IMAGE
from ..bags.reader import BagMessage, BagReader, bag_folder
from ..core.engine import EpisodeEngine, MissingGoal
from ..core.errors import ConfigError, GrmError
from ..core.names import GOAL_FILE, GROUND_TRUTH_FILE, KEYFRAMES_FILE, TASK_FILE
from ..core.profiles import CheckpointProfile
from ..core.prompt import check_task
from ..core.result import StepResult
from ..core.sync import FRONT, SyncedSet
from ..core.types import GrmBackend
from ..files.frames import read_image
from ..pipeline import images
from ..pipeline.events import EventKind, WorkerEvent, result_events
from ..pipeline.input import Counts, FrameInput, Received, decode_set
from ..pipeline.params import NodeConfig, Transport, Trigger
from ..training.keyframes import load_instructions, parse_keyframes, read_json, stepwise_progress
from .records import ResultWriter
from .replay_bag import EPISODE_EVENT, ResultBag, check_free, open_result_bag
from .replay_summary import ReplayEpisode, ReplaySummary, write_summary

log = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class ReplayOptions:
    """What to do besides scoring; ``''``/``None`` fields fall back as the docs say."""

    out_dir: Path
    _: KW_ONLY
    task: str = ''                     # '' -> node task, START events, the bag's labels
    goal: Path | None = None           # None -> node goal_image, bag goal.png, last front frame
    split_gap_s: float | None = None
    split_at_events: bool = False
    write_bag: Path | None = None
    bag_storage: str = 'mcap'
    topic_prefix: str = '/robo_dopamine'
    keyframes: Path | None = None      # upstream annotated_keyframes.json (front frame ids)
    show_progress: bool = False

    def __post_init__(self) -> None:
        if self.split_gap_s is not None and not self.split_gap_s > 0:
            raise ConfigError(f'split_gap_s must be > 0, got {self.split_gap_s!r}')


@dataclass(frozen=True)
class _Where:
    """Where a camera message was in the bag (the tag of its frame in the synchronizer)."""

    bag_ns: int
    index: int           # position among this camera's messages


class _GroundTruth:
    """Ground-truth progress of a sample, by front frame index or by stamp."""

    def __init__(self, source: str, at: Callable[[int, int], float]) -> None:
        self.source = source
        self.at = at         # (stamp_ns, front frame index) -> progress

    @classmethod
    def find(cls, bag: Path, keyframes: Path | None, num_front: int) -> _GroundTruth | None:
        """Explicit keyframes, else the bag's synthetic labels, else its keyframes file."""
        folder = bag_folder(bag)
        labels = folder / GROUND_TRUTH_FILE
        if keyframes is None and labels.is_file():
            truth = read_json(labels)
            stamps = np.asarray(truth['stamps_ns'], dtype=np.float64)
            progress = np.asarray(truth['progress'], dtype=np.float64)
            return cls(str(labels), lambda stamp, _: float(np.interp(stamp, stamps, progress)))
        path = keyframes or folder / KEYFRAMES_FILE
        if keyframes is None and not path.is_file():
            return None
        segments = parse_keyframes(read_json(path), num_front, str(path))
        return cls(str(path), lambda _, index: float(stepwise_progress(segments, [index])[0]))


class _Replay:
    """One replay run; :func:`replay_bag` is the entry point."""

    #: The engine over the model, made by :meth:`run` (the checks before it need no model).
    engine: EpisodeEngine

    def __init__(self, bag: BagReader, node: NodeConfig, options: ReplayOptions,
                 on_result: Callable[[StepResult], None] | None) -> None:
        """Check everything but the model (topics, labels, goal, task), so that a bad input is
        refused before a model is loaded."""
        self.bag, self.node, self.options, self.on_result = bag, node, options, on_result
        self.roles = {cam.topic: i for i, cam in enumerate(node.cameras)}
        self._check_topics()
        self.front_topic = node.cameras[FRONT].topic
        self.num_front = bag.message_counts[self.front_topic]
        self.truth = _GroundTruth.find(bag.path, options.keyframes, self.num_front)
        self.input_counts = Counts()
        self.input = FrameInput(node, self.input_counts, on_time_jump=self._time_jumped,
                                warn=log.warning, stale_after_s=None)
        self.jumped = False     # time went back since the last set: a new episode
        self.goal = self._goal()
        self.explicit_task = options.task or node.task
        self.next_task = self.explicit_task or self._labelled_task()
        self.boundaries = self._start_events() if options.split_at_events else []
        if self.next_task:
            check_task(self.next_task)
        elif not any(task for _, task in self.boundaries):
            raise _no_task()
        self.episode: ReplayEpisode | None = None
        self.episodes: list[ReplayEpisode] = []
        self.prev_set_ns: int | None = None
        self.frame_count = [0] * len(node.cameras)
        self.counters: dict[str, int] = dict.fromkeys(
            ('messages', 'samples_due', 'scored', 'rejected'), 0)
        self.sink: ResultWriter | None = None
        self.out_bag: ResultBag | None = None
        if node.trigger is Trigger.SERVICE:
            log.warning('trigger=service: replay scores on the sampling.interval_s grid')

    # -- set-up ------------------------------------------------------------------------------

    def _check_topics(self) -> None:
        self.bag.require(list(self.roles))
        for cam in self.node.cameras:
            want = COMPRESSED_IMAGE if cam.transport is Transport.COMPRESSED else IMAGE
            got = self.bag.topics[cam.topic]
            if got != want:
                raise ConfigError(f'camera {cam.role!r}: {cam.topic!r} is {got!r} in the bag, '
                                  f'but cameras.{cam.role}.transport is '
                                  f'{cam.transport.value!r} ({want!r})')
        if self.options.write_bag is not None:
            check_free(self.bag, self.options.topic_prefix)

    def _goal(self) -> np.ndarray | None:
        """REF END: given, the node's goal_image, the bag's goal.png, or (unless the node runs
        without one) the last front frame, upstream's offline rule."""
        given = self.options.goal or self.node.goal_image
        if given:
            return read_image(given)
        labelled = bag_folder(self.bag.path) / GOAL_FILE
        if labelled.is_file():
            return read_image(labelled)
        if self.node.engine.missing_goal is MissingGoal.BLANK:
            return None
        last = collections.deque(self.bag.raw([self.front_topic]), maxlen=1)[0]
        compressed = self.node.cameras[FRONT].transport is Transport.COMPRESSED
        return images.to_rgb(images.parse_frame(last.msg, compressed))

    def _start_events(self) -> list[tuple[int, str]]:
        """``(stamp, task)`` of every recorded START event, read before the frames: an event
        recorded just after the first frame it applies to must still split there."""
        topics = [t for t, kind in self.bag.topics.items() if kind == EPISODE_EVENT]
        starts = []
        for message in self.bag.messages(topics) if topics else ():
            msg = message.msg
            if msg.event == int(EventKind.START):
                starts.append((msg.header.stamp.sec * _NS_PER_S + msg.header.stamp.nanosec,
                               msg.task))
        if not starts:
            log.warning('no ~/episode START events in %s: nothing to split at', self.bag.path)
        return sorted(starts)

    def _labelled_task(self) -> str:
        folder = bag_folder(self.bag.path)
        if (folder / GROUND_TRUTH_FILE).is_file():
            return str(read_json(folder / GROUND_TRUTH_FILE).get('task', ''))
        if (folder / TASK_FILE).is_file():
            return load_instructions([folder / TASK_FILE])[0]
        return ''

    # -- the run -----------------------------------------------------------------------------

    def run(self, backend: GrmBackend, profile: CheckpointProfile) -> ReplaySummary:
        from tqdm import tqdm

        self.engine = EpisodeEngine(backend, self.node.engine, profile)
        options = self.options
        error: BaseException | None = None
        with ExitStack() as stack:
            if options.write_bag is not None:
                self.out_bag = stack.enter_context(open_result_bag(
                    options.write_bag, self.bag, options.bag_storage, options.topic_prefix))
            self.sink = stack.enter_context(ResultWriter(options.out_dir))
            bar = stack.enter_context(tqdm(total=self.num_front, unit='frame', leave=False,
                                           disable=not options.show_progress))
            topics = None if self.out_bag else list(self.roles)
            try:
                for message in self.bag.raw(topics):
                    self.counters['messages'] += 1
                    if self.out_bag is not None:
                        self.out_bag.copy(message)
                    if message.topic in self.roles:
                        self._frame(self.roles[message.topic], message)
                        bar.update(message.topic == self.front_topic)
                for synced in self.input.flush():
                    self._synced(synced)
            except (GrmError, KeyboardInterrupt) as err:
                error = err
        summary = self._finish(error)
        if isinstance(error, KeyboardInterrupt):
            raise error
        if error is not None:
            raise ConfigError(f'{error}; the {self.counters["scored"]} samples scored before '
                              f'it are in {str(options.out_dir)!r}') from error
        return summary

    def _frame(self, index: int, message: BagMessage) -> None:
        """As the node's camera callback, with the bag's receive time as the clock."""
        position = self.frame_count[index]
        self.frame_count[index] += 1
        for synced in self.input.frame(index, message.msg, rx=message.stamp_ns / _NS_PER_S,
                                       received_ns=message.stamp_ns, now_ns=message.stamp_ns,
                                       tag=_Where(message.stamp_ns, position)):
            self._synced(synced)

    def _time_jumped(self, reason: str) -> None:
        log.warning('%s: starting a new episode', reason)
        self.jumped = True

    def _synced(self, synced: SyncedSet) -> None:
        stamp = synced.stamp_ns
        front: Received = synced.items[FRONT]
        self._open_episode(stamp, front)
        if not self.engine.wants(stamp):
            return
        self.counters['samples_due'] += 1
        try:
            sample = decode_set(synced, [camera.role for camera in self.node.cameras],
                                self.node.max_input_pixels)
        except images.ViewError as err:
            self.input.bad_frame(err.index, err.error)
            return
        try:
            result = self.engine.step(sample)
        except GrmError as err:      # as the node's worker: the sample is skipped, counted
            self.counters['rejected'] += 1
            log.warning('sample at %d ns not scored: %s', stamp, err)
            return
        self._record(result, front)

    def _open_episode(self, stamp: int, front: Received) -> None:
        """Start an episode at the first set, after a time jump or a gap, or at a recorded
        START event."""
        crossed = self.jumped or (
            self.options.split_gap_s is not None and self.prev_set_ns is not None
            and stamp - self.prev_set_ns > self.options.split_gap_s * _NS_PER_S)
        self.jumped = False
        while self.boundaries and self.boundaries[0][0] <= stamp:
            _, task = self.boundaries.pop(0)
            if task and not self.explicit_task:
                self.next_task = task
            crossed = True
        self.prev_set_ns = stamp
        if self.episode is not None and not (crossed and self.episode.records):
            return
        if not self.next_task:
            raise _no_task()
        previous = self.episode.episode_id if self.episode else ''
        eid = self.engine.start(self.next_task, self.goal)
        self.episode = ReplayEpisode(eid, self.next_task)
        self.episodes.append(self.episode)
        self._write_event(WorkerEvent(EventKind.START, eid, previous, self.next_task,
                                      'bag replay'), stamp, front)

    def _record(self, result: StepResult, front: Received) -> None:
        assert self.sink is not None and self.episode is not None
        self.counters['scored'] += 1
        where: _Where = front.tag
        truth = None if self.truth is None else self.truth.at(result.stamp_after_ns, where.index)
        self.episode.records.append(self.sink.write(
            result, frame_index=where.index, bag_time_ns=where.bag_ns, gt_progress=truth))
        if self.out_bag is not None:
            self.out_bag.write_result(result, where.bag_ns, front.frame.frame_id)
        for event in result_events(result):
            self._write_event(event, result.stamp_after_ns, front)
        if self.on_result is not None:
            self.on_result(result)

    def _write_event(self, event: WorkerEvent, stamp: int, front: Received) -> None:
        if self.out_bag is not None:
            self.out_bag.write_event(event, stamp, front.tag.bag_ns, front.frame.frame_id)

    # -- results -----------------------------------------------------------------------------

    def _finish(self, error: BaseException | None) -> ReplaySummary:
        """Plots and ``summary.json`` of whatever was scored (also after an error)."""
        run = {'bag': str(self.bag.path), 'model_id': self.engine.backend.model_id,
               'cameras': {c.role: c.topic for c in self.node.cameras},
               'sampling_interval_s': self.node.engine.sampling.interval_s,
               'ground_truth': self.truth.source if self.truth else None}
        counters = {**self.counters, **self.input_counts.counts, **self.input.sync.stats()}
        return write_summary(self.options.out_dir, self.episodes, counters,
                             self.options.write_bag, run, error)


def replay_bag(bag: str | Path, backend: GrmBackend, node: NodeConfig, options: ReplayOptions,
               profile: CheckpointProfile | None = None,
               on_result: Callable[[StepResult], None] | None = None) -> ReplaySummary:
    """Score a rosbag2 bag as the node would have, writing results as they come.

    Args:
        bag: rosbag2 directory (mcap or sqlite3) or a bare ``.mcap``/``.db3`` file.
        backend: The GRM (a product backend; tests pass the scripted test double).
        node: The node's parameters (cameras, sync, sampling, engine, stamps, task, goal).
        options: Outputs, episode splitting, ground truth.
        profile: The checkpoint profile the backend runs (default: the node config's).
        on_result: Called with every scored result (progress display).

    Raises:
        ConfigError: A camera topic is not in the bag (the message lists the bag's topics), a
            transport does not match, no task or goal, or the bag breaks off or is corrupt
            part-way: then the results scored before are kept and the message says where.
    """
    with open_replay(bag, node, options, on_result) as run:
        return run.run(backend, profile or node.profile)


@contextmanager
def open_replay(bag: str | Path, node: NodeConfig, options: ReplayOptions,
                on_result: Callable[[StepResult], None] | None = None) -> Iterator[_Replay]:
    """The replay of ``bag``, checked without a model; ``.run(backend, profile)`` scores it
    (what :func:`replay_bag` does). The command loads its model only once this succeeded.

    Raises:
        ConfigError: As :func:`replay_bag`, for everything that needs no model.
    """
    with BagReader(bag) as reader:
        yield _Replay(reader, node, options, on_result)


def _no_task() -> ConfigError:
    return ConfigError('no task: give one (--task or the task parameter); the bag has no '
                       f'{GROUND_TRUTH_FILE}, {TASK_FILE} or START event with a task')
