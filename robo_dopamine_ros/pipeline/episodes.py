"""The worker's episode commands: task, goal, reset and on-demand scoring, on its thread.

Each command answers with a :class:`Reply` and raises nothing: a refused change leaves the running
episode, its task and goal as they were. While the node is inactive, task and goal changes are
stored for the next activation. Every new episode emits its change event, then START.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.engine import EpisodeEngine, Sample
from ..core.errors import ConfigError, GrmError
from ..core.images import prepare
from ..core.profiles import CheckpointProfile
from ..core.prompt import check_task
from ..core.result import StepResult
from .events import EventKind, WorkerEvent


@dataclass(frozen=True)
class QueuedSample:
    """A due sample: its stamp, the front camera frame its results are published in, and how
    to get its images (decoding, on the worker thread; raises an ImageError for a bad frame)."""

    stamp_ns: int
    frame_id: str
    load: Callable[[], Sample]


@dataclass(frozen=True)
class Reply:
    """The answer to a command; ``result`` is the step an on-demand score produced."""

    success: bool
    message: str
    episode_id: str = ''
    result: StepResult | None = None


class EpisodeCommands:
    """The episode side of the worker (its thread only; ``lock`` guards the engine's episode
    against readers on other threads).

    ``is_active`` tells whether the node scores; ``score_one`` scores and publishes a sample.
    """

    def __init__(self, engine: EpisodeEngine, profile: CheckpointProfile, *, task: str,
                 goal: np.ndarray | None, lock: threading.Condition,
                 is_active: Callable[[], bool],
                 score_one: Callable[[QueuedSample], StepResult],
                 on_event: Callable[[WorkerEvent], None]) -> None:
        self.engine = engine
        self.task = task
        self.goal = goal
        self._profile = profile
        self._lock = lock
        self._is_active = is_active
        self._score_one = score_one
        self._on_event = on_event
        self.last_stamp: int | None = None     # last sample scored in the episode

    def open(self, change: EventKind | None, detail: str, episode_id: str) -> Reply:
        """Start an episode with the current task and goal; emit ``change`` then START.

        Raises nothing: a failure (no goal where one is needed, a goal image that cannot be
        used) leaves the running episode, if any, as it was.
        """
        previous = self.engine.episode_id or ''
        try:
            with self._lock:
                eid = self.engine.start(self.task, self.goal, episode_id or None)
        except GrmError as err:
            return Reply(False, str(err), previous)
        self.last_stamp = None
        if change is not None and previous:
            self._on_event(WorkerEvent(change, eid, previous, self.task, detail))
        self._on_event(WorkerEvent(EventKind.START, eid, previous, self.task, detail))
        return Reply(True, f'episode {eid!r} started ({detail})', eid)

    def reset(self, episode_id: str, detail: str) -> Reply:
        if not self._is_active():
            return Reply(False, 'the node is not active: nothing to reset')
        if self.engine.episode_id is None:
            return Reply(False, 'no episode to reset: set a task (and a goal image) first')
        return self.open(EventKind.RESET, detail, episode_id)

    def set_task(self, task: str, episode_id: str) -> Reply:
        try:
            check_task(task)
        except ConfigError as err:
            return Reply(False, str(err), self.engine.episode_id or '')
        if not self._is_active():
            self.task = task
            return Reply(True, 'task set; the episode starts when the node is activated')
        previous_task, self.task = self.task, task
        outcome = self.open(EventKind.TASK_CHANGED, 'task changed', episode_id)
        if outcome.success:
            return outcome
        if outcome.episode_id:      # keep the running episode and its task
            self.task = previous_task
            return Reply(False, f'task not changed: {outcome.message}', outcome.episode_id)
        return Reply(True, f'task set; no episode yet: {outcome.message}')

    def set_goal(self, goal: np.ndarray, detail: str, episode_id: str) -> Reply:
        if not self.task or not self._is_active():
            try:
                prepare(goal, self._profile.pixel_limits)   # refuse an unusable image now
            except GrmError as err:
                return Reply(False, f'goal image rejected: {err}')
            self.goal = goal
            if not self._is_active():
                return Reply(True, 'goal set; the episode starts when the node is activated')
            return Reply(True, 'goal set; no episode until a task is set')
        previous_goal, self.goal = self.goal, goal
        outcome = self.open(EventKind.GOAL_CHANGED, detail, episode_id)
        if not outcome.success:
            self.goal = previous_goal
            return Reply(False, f'goal image rejected: {outcome.message}', outcome.episode_id)
        return outcome

    def score(self, before_stamp_ns: int, before: QueuedSample | None, after: QueuedSample,
               slop_ns: int) -> Reply:
        eid = self.engine.episode_id
        if not self._is_active():
            return Reply(False, 'the node is not active')
        if eid is None:
            return Reply(False, 'no episode: set a task (and a goal image) first')
        last = self.last_stamp
        try:
            if last is None:
                if before_stamp_ns == 0:
                    return Reply(False, 'a fresh episode needs before_stamp: the buffered '
                                          'sample that becomes its START', eid)
                if before is None:
                    return Reply(False, f'no buffered sample within the sync slop of '
                                          f'before_stamp {before_stamp_ns} ns', eid)
                self._score_one(before)
            elif before_stamp_ns and abs(before_stamp_ns - last) > slop_ns:
                return Reply(False, f'before_stamp {before_stamp_ns} ns is not the last '
                                      f'sample this episode scored ({last} ns)', eid)
            result = self._score_one(after)
        except GrmError as err:
            return Reply(False, f'not scored: {err}', eid)
        return Reply(True, f'scored step {result.step}', eid, result)
