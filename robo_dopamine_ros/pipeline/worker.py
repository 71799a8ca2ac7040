"""The inference worker: the one thread that owns the episode engine and calls the model.

A model call takes ~0.1 s on a GPU and seconds on a CPU, so ROS callbacks never make one: they
``offer`` a stamp (is a sample due?) and ``submit`` a due sample, whose images are decoded here,
on this thread (``QueuedSample.load``): a camera callback never touches pixels.
Commands (reset, new task, new goal, on-demand scoring) run on the same thread, between steps, so
a command never lands in the middle of a step and every result carries the episode it was
computed in.

Rules:

* The sample queue is bounded (``queue.length``). When it is full the OLDEST pending sample is
  dropped and counted: a reward for a frame long gone is worth less than one for a recent frame.
* A command that opens a new episode (reset, task, goal) drops the samples still pending (counted
  as superseded) and pauses sampling until it has run; a sample offered before it but submitted
  after it is superseded too. No sample of the old episode is scored into the new one.
* Lifecycle (the node is a managed node). The model's state machine (pipeline/model.py, the
  one owner of the backend) is mirrored on the node's states. :meth:`start` loads and warms up
  the backend on this thread (``loaded`` tells the outcome: the node's ``configure`` waits for
  it, bounded; :meth:`cancel_load` abandons it and frees what it built). Commands are served
  from then on, but samples are scored only while active: :meth:`activate` (re)loads a released
  model, emits READY and opens an episode; :meth:`deactivate` stops scoring at once, drops
  pending samples, cancels the model call underway (per call, never the sticky stop) or the
  reload in flight and publishes nothing of it, optionally releasing the model; :meth:`stop`
  ends the thread and closes the backend. A failed reload leaves the model EMPTY, so the next
  activate loads again: an operator's retry never finds a half-loaded model.
* Episode commands (pipeline/episodes.py): while inactive, task and goal changes are stored
  for the next activation.

Pure Python (no rclpy): the node adapts it to topics and services.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ..core.engine import EngineConfig, EpisodeEngine
from ..core.errors import BackendStoppedError, GrmError
from ..core.profiles import CheckpointProfile
from ..core.result import StepResult
from ..core.types import GrmBackend
from .episodes import EpisodeCommands, QueuedSample, Reply
from .events import EventKind, WorkerEvent, result_events
from .model import Logger, ModelSlot, ModelState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Command:
    run: Callable[[], Reply]
    future: Future[Reply]
    supersedes: bool


class InferenceWorker:
    """Owns the engine on one thread; see the module docstring for the rules.

    Callbacks run on the worker thread: ``on_result(result, frame_id)`` for every scored step,
    ``on_event`` for episode events, ``on_fatal(error)`` once if the thread dies after loading
    (the node then shuts down). A load failure is no fatal error: it resolves :attr:`loaded`
    (configure) or fails the activate that reloads.
    """

    def __init__(self, make_backend: Callable[[], GrmBackend], config: EngineConfig,
                 profile: CheckpointProfile, *, task: str, goal: np.ndarray | None,
                 queue_length: int, logger: Logger, load_retry_s: float = 0.0,
                 on_result: Callable[[StepResult, str], None],
                 on_event: Callable[[WorkerEvent], None],
                 on_fatal: Callable[[BaseException], None]) -> None:
        self._queue_length = queue_length
        self._log = logger
        self._on_result = on_result
        self._on_event = on_event
        self._on_fatal = on_fatal
        self._cond = threading.Condition()
        self._model = ModelSlot(make_backend, profile, self._cond, logger, load_retry_s)
        self._samples: deque[QueuedSample] = deque()
        self._commands: deque[_Command] = deque()
        self._generation = 0
        self._deactivations = 0     # an activate queued before a deactivate must not activate
        self._pending_changes = 0
        self._stopping = False
        #: Held while a result is published; deactivate takes it so nothing follows it.
        self._publish_lock = threading.Lock()
        self._loaded: Future[str] = Future()
        self._engine = EpisodeEngine(self._model, config, profile)    # type: ignore[arg-type]
        #: Events of the command being run (worker thread only), sent once it is over.
        self._command_events: list[WorkerEvent] = []
        self._episodes = EpisodeCommands(self._engine, profile, task=task, goal=goal,
                                         lock=self._cond, is_active=lambda: self.ready,
                                         score_one=self._score_one,
                                         on_event=self._command_events.append)
        self._dropped = 0
        self._superseded = 0
        self._rejected = 0
        self._not_ready = 0
        self._paused = 0
        self._no_episode = 0
        self._thread = threading.Thread(target=self._run, name='grm-worker', daemon=True)

    # -- state, read from any thread ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while active: samples are scored and results published."""
        return self._model.state is ModelState.ACTIVE

    @property
    def model_state(self) -> ModelState:
        return self._model.state

    @property
    def load_error(self) -> str:
        """Why the last attempt to load failed while loading is retried ('' otherwise)."""
        with self._cond:
            return self._model.load_error

    @property
    def loaded(self) -> Future[str]:
        """Resolves to the model id once loaded and warmed up, or to the loading error."""
        return self._loaded

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (or the thread ended)."""
        with self._cond:
            return self._stopping

    @property
    def alive(self) -> bool:
        """True until the thread has ended (and with it, closed the model)."""
        return self._thread.is_alive()

    @property
    def backend(self) -> GrmBackend | None:
        """The resident backend (None while nothing is loaded)."""
        return self._model.backend

    @property
    def episode_id(self) -> str | None:
        with self._cond:
            return self._engine.episode_id

    def counters(self) -> dict[str, int]:
        """Samples dropped (queue full), superseded (by a command), rejected (by the engine);
        sets offered before READY (not_ready), while an episode change was pending (paused) or
        without an episode (no_episode); samples and commands still pending."""
        with self._cond:
            return {'dropped': self._dropped, 'superseded': self._superseded,
                    'rejected': self._rejected, 'not_ready': self._not_ready,
                    'paused': self._paused,
                    'no_episode': self._no_episode, 'pending': len(self._samples),
                    'commands_pending': len(self._commands)}

    # -- input -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread: load and warm up the backend (see :attr:`loaded`), then serve."""
        self._thread.start()

    def activate(self) -> Future[Reply]:
        """Score from now on: reload a released model, emit READY, open an episode.

        A :meth:`deactivate` called before this command ran (e.g. the transition's bound passed)
        makes it fail instead: the model is never activated behind the node's back.
        """
        with self._cond:
            epoch = self._deactivations
        return self._command(lambda: self._activate(epoch), supersedes=True)

    def deactivate(self, release: bool) -> Future[Reply]:
        """Stop scoring now; the returned future resolves once the step in flight is over
        (cancelled, never published) and, with ``release``, the model is closed. A reload in
        flight is cancelled (what it built is freed)."""
        with self._cond:
            self._deactivations += 1
            self._generation += 1
            self._superseded += len(self._samples)
            self._samples.clear()
        self._model.deactivate()
        self._model.cancel_load()
        with self._publish_lock:    # a publish in progress ends before this returns
            pass
        return self._command(lambda: self._deactivated(release), supersedes=False)

    def cancel_load(self) -> None:
        """Abandon the load in flight (configure's bound passed); :attr:`loaded` then fails."""
        self._model.cancel_load()

    def offer(self, stamp_ns: int) -> int | None:
        """Is a sample with this stamp due? Returns a ticket for :meth:`submit`, or None.

        None before READY, without an episode, while an episode change is pending, or when the
        engine's sampler does not want this stamp.
        """
        with self._cond:
            if not self.ready or self._stopping:
                self._not_ready += 1
                return None
            if self._pending_changes:
                self._paused += 1
                return None
            if self._engine.episode_id is None:
                self._no_episode += 1
                return None
            return self._generation if self._engine.wants(stamp_ns) else None

    def submit(self, ticket: int, item: QueuedSample) -> None:
        """Queue a due sample without waiting; the oldest pending one goes when full."""
        with self._cond:
            if ticket != self._generation or self._stopping:
                self._superseded += 1
                return
            if len(self._samples) >= self._queue_length:
                self._samples.popleft()
                self._dropped += 1
            self._samples.append(item)
            self._cond.notify()

    def reset(self, episode_id: str = '', detail: str = 'reset on request') -> Future[Reply]:
        """Open a new episode with the same task and goal; ``detail`` is the RESET reason."""
        return self._command(lambda: self._episodes.reset(episode_id, detail),
                             supersedes=True)

    def set_task(self, task: str, episode_id: str = '') -> Future[Reply]:
        """Change the task; opens a new episode when a goal allows it."""
        return self._command(lambda: self._episodes.set_task(task, episode_id),
                             supersedes=True)

    def set_goal(self, goal: np.ndarray, detail: str, episode_id: str = '') -> Future[Reply]:
        """Change the goal image; opens a new episode when a task is set."""
        return self._command(lambda: self._episodes.set_goal(goal, detail, episode_id),
                             supersedes=True)

    def score(self, before_stamp_ns: int, before: QueuedSample | None, after: QueuedSample,
              slop_ns: int) -> Future[Reply]:
        """Score BEFORE -> AFTER on demand (``~/score_transition``, srv/ScoreTransition.srv).

        ``before_stamp_ns`` must be 0 or within ``slop_ns`` of the last sample this episode
        scored; in a fresh episode ``before`` (the buffered sample at that stamp) becomes START.
        """
        return self._command(lambda: self._episodes.score(before_stamp_ns, before, after,
                                                          slop_ns),
                             supersedes=False)

    def stop(self, timeout_s: float) -> bool:
        """Stop scoring, interrupt a load or model call and join; True if the thread ended
        (the model is then closed)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._model.request_stop()
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # -- the thread --------------------------------------------------------------------------

    def _command(self, run: Callable[[], Reply], supersedes: bool) -> Future[Reply]:
        future: Future[Reply] = Future()
        with self._cond:
            if self._stopping:
                future.set_result(Reply(False, 'the node is shutting down'))
                return future
            if supersedes:
                self._generation += 1
                self._superseded += len(self._samples)
                self._samples.clear()
                self._pending_changes += 1
            self._commands.append(_Command(run, future, supersedes))
            self._cond.notify()
        return future

    def _next(self) -> _Command | QueuedSample | None:
        with self._cond:
            while not (self._stopping or self._commands or (self.ready and self._samples)):
                self._cond.wait()
            if self._stopping:
                return None
            return self._commands.popleft() if self._commands else self._samples.popleft()

    def _run(self) -> None:
        try:
            try:
                model_id = self._model.load()
            except Exception as err:  # noqa: BLE001 - reported to configure through the future
                self._loaded.set_exception(err)
                return
            self._loaded.set_result(model_id)
            self._serve()
        except GrmError as err:     # the backend cannot answer: a clear message suffices
            self._fail(err)
        except Exception as err:  # the thread's boundary: a bug must not leave a silent node
            if not self.stopping:   # an error caused by the stop request itself is no failure
                log.error('inference worker failed', exc_info=True)
            self._fail(err)
        finally:
            self._model.close()
            with self._cond:
                self._stopping = True
                commands = list(self._commands)
                self._commands.clear()
            for cmd in commands:
                cmd.future.set_result(Reply(False, 'the node is shutting down'))

    def _fail(self, err: BaseException) -> None:
        if not self.stopping:   # an error caused by the stop request itself is no failure
            self._on_fatal(err)

    def _serve(self) -> None:
        while (item := self._next()) is not None:
            if isinstance(item, QueuedSample):
                self._step(item)
                continue
            try:
                outcome = item.run()
            except BaseException as err:
                item.future.set_exception(err)
                raise
            finally:
                if item.supersedes:
                    with self._cond:
                        self._pending_changes -= 1
                self._send_command_events()
            item.future.set_result(outcome)

    def _send_command_events(self) -> None:
        """Send the events of the command just run, now that samples are offered again: a
        client that answers START with frames never finds the worker still paused."""
        events = self._command_events.copy()
        self._command_events.clear()    # cleared in place: the episode commands append to it
        for event in events:
            self._on_event(event)

    def _score_one(self, item: QueuedSample) -> StepResult:
        result = self._engine.step(item.load())
        self._episodes.last_stamp = result.stamp_after_ns
        with self._publish_lock:
            with self._cond:
                if self._stopping or not self.ready:  # deactivated or stopping meanwhile
                    return result
            self._on_result(result, item.frame_id)
            for event in result_events(result):
                self._on_event(event)
        return result

    def _step(self, item: QueuedSample) -> None:
        try:
            self._score_one(item)
        except BackendStoppedError:      # shutdown interrupted the model call: nothing to report
            return
        except GrmError as err:     # a stamp going back, an unusable view: skip the sample
            with self._cond:
                self._rejected += 1
            self._log.warning(f'sample at {item.stamp_ns} ns not scored: {err}')

    # -- commands (worker thread) ------------------------------------------------------------

    def _activate(self, epoch: int) -> Reply:
        with self._cond:
            if epoch != self._deactivations:
                return Reply(False, 'deactivated before the activation completed')
        if self._model.state is ModelState.EMPTY:   # released by a deactivate: load it again
            try:
                self._model.load()
            except GrmError as err:     # EMPTY again, what the load built is closed
                return Reply(False, f'cannot reload the model: {err}')
        with self._cond:
            if epoch != self._deactivations:
                return Reply(False, 'deactivated before the activation completed')
            self._model.activate()
        model = self._model.model_id
        self._command_events.append(WorkerEvent(
            EventKind.READY, task=self._episodes.task,
            detail=f'model {model!r} loaded and warmed up'))
        if not self._episodes.task:
            self._log.info('no task yet: waiting for ~/set_task')
            return Reply(True, 'active; no task yet')
        outcome = self._episodes.open(None, 'activated', '')
        if not outcome.success:
            self._log.warning(f'no episode yet: {outcome.message}')
        return Reply(True, f'active; {outcome.message}', outcome.episode_id)

    def _deactivated(self, release: bool) -> Reply:
        if release:
            self._model.release()
            return Reply(True, 'scoring stopped; model released')
        return Reply(True, 'scoring stopped; model kept loaded')
