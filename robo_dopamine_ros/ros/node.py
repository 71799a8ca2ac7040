"""The reward node ``robo_dopamine``: camera streams in, GRM progress and shaped reward out.

Data flow. The node only adapts the ROS-free sample pipeline (pipeline/) to topics and services.
Cameras are subscribed raw (serialized): a camera callback parses the few header fields the frame
check and the stamp rule need from the bytes and hands the frame to the pipeline's input
(frame check, stamp rule, synchronizer, staleness); for a fresh synchronized set the engine's
sampler (via the worker) decides whether it is due, and only a due set is queued, still
serialized. The inference worker thread decodes its images, calls the model and publishes: a
camera callback never touches pixels or waits. Services wait, bounded, for the worker in a
reentrant group while the camera callbacks keep flowing. Names and parameters:
docs/node-contract.md.

Hardening. Every image is sized from its header against ``input.max_pixels`` before it is
decoded. An unexpected error in a callback is caught at the callback's boundary, logged with its
traceback (once per place and error type), counted in /diagnostics and, for a service, answered
as a failure: one bad message never ends the node. At most :data:`SERVICE_SLOTS` service calls
wait for the worker at a time; more are refused at once, so a flood of calls never occupies the
executor threads the cameras need. Header time (or the ROS clock) jumping back beyond the sync
slop starts a new episode: no transition spans the jump. A fatal error (the worker or the model
lost, an error escaping the executor) ends the process with a FATAL line and exit code 1.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger as TriggerSrv

from ..backends import factory
from ..core.engine import Sample
from ..core.errors import ConfigError, GrmError, ImageError
from ..core.result import StepResult
from ..core.sync import FRONT, SyncedSet
from ..core.types import GrmBackend
from ..files.frames import read_image
from ..msg import EpisodeEvent, Progress, Reward
from ..pipeline import images
from ..pipeline.input import FrameInput, decode_set
from ..pipeline.params import (
    NODE_NAME,
    PARAM_NAMES,
    PARAMS_BY_NAME,
    NodeConfig,
    Reliability,
    Trigger,
)
from ..pipeline.worker import EventKind, InferenceWorker, QueuedSample, Reply, WorkerEvent
from ..srv import ScoreTransition, SetGoal, SetTask
from .cameras import CameraThread
from .diagnostics import ModelInfo, NodeStats, unconfigured_status
from .messages import episode_event_msg, progress_msg, reward_msg, time_to_ns
from .params import declare, read

#: How long a service waits for the worker (a model step, or the step in flight before a reset).
SERVICE_TIMEOUT_S = 60.0
#: How long shutdown waits for the worker to leave a model call (it is asked to stop first).
WORKER_STOP_TIMEOUT_S = 3.0
#: Synchronized sets kept for ~/score_transition (trigger=service): the recent past a learner
#: may ask about. Raw messages are kept, so memory is this times the size of one set.
SCORE_BUFFER_SETS = 32
#: Minimum seconds between repeats of the same warning about bad input.
WARN_THROTTLE_S = 5.0
#: Service calls that may wait for the worker at once; further calls are refused at once. Keeps
#: executor threads free for the cameras however fast a client calls.
SERVICE_SLOTS = 2
#: Requests a service keeps queued in DDS while the executor is busy (the default is 10).
SERVICE_QUEUE_DEPTH = 100

BackendFactory = Callable[[NodeConfig], GrmBackend]


def load_backend(config: NodeConfig) -> GrmBackend:
    """The backend named by ``model.backend``, from the one registry (backends/factory.py).

    Loads the model (or opens the server connection): call it off the executor.
    """
    return factory.make_backend(config.backend, **config.backend_options)


class RewardNode(LifecycleNodeMixin, Node):
    """Scores synchronized camera samples with the GRM and publishes progress and reward.

    A managed (lifecycle) node. ``configure``: parameters validated, the goal image read, the
    model loaded and warmed up, the services created (an operator can set the task and goal
    before scoring); a failure leaves it unconfigured, with the reason in the log and
    /diagnostics, and ``configure`` can be retried after fixing parameters. ``activate``: camera
    subscriptions and publishers on, READY and an episode; scoring happens only while active.
    ``deactivate``: scoring stops at once (the model call in flight is cancelled and never
    published), PAUSED; with ``model.release_on_deactivate`` the model is freed and the next
    ``activate`` reloads it. ``cleanup``: the model released. ``shutdown``: from any state.
    With ``autostart`` (default) :func:`main` drives configure and activate itself.

    Args:
        backend_factory: Builds the backend from the config on the worker thread; default
            :func:`load_backend`. Tests inject slow or failing test doubles here.
        **kwargs: Passed to ``rclpy.node.Node`` (``context``, ``parameter_overrides``, ...).

    Raises:
        ConfigError: A parameter override has the wrong type or range, or an unknown name under
            the node's own prefixes.
    """

    def __init__(self, *, backend_factory: BackendFactory = load_backend, **kwargs: Any) -> None:
        Node.__init__(self, NODE_NAME, **kwargs)
        # The lifecycle services get a reentrant group of their own: while a transition loads a
        # model, get_state (and, in the default group, the parameter services) keep answering.
        # Transitions themselves are serialized by a guard (:meth:`_change_state`).
        LifecycleNodeMixin.__init__(self, callback_group=ReentrantCallbackGroup())
        self._transition_lock = threading.Lock()
        service = self._service_change_state
        service.callback = partial(self._change_state, service.callback)
        try:
            declare(self)
            period = PARAMS_BY_NAME['diagnostics.period_s'].check(
                self.get_parameter('diagnostics.period_s').value)
        except GrmError:
            self.destroy_node()
            raise
        self._backend_factory = backend_factory
        #: Configure and activate at startup (:func:`main`, tests) instead of waiting for a
        #: lifecycle manager.
        self.autostart: bool = self.get_parameter('autostart').value
        #: Set when the node should exit (a fatal error, a shutdown transition); ``main`` waits.
        self.stop_requested = threading.Event()
        self.fatal_error: BaseException | None = None
        self.config: NodeConfig | None = None
        self._closed = False
        self._error = ''        # why the last transition failed ('' after a success)
        self._worker: InferenceWorker | None = None
        #: A stopped worker whose thread has not ended yet: its model is still resident, so
        #: configure waits for it (or refuses) instead of loading a second one.
        self._retiring: InferenceWorker | None = None
        self._stats: NodeStats | None = None
        self._cameras: CameraThread | None = None
        self._service_handles: list[Any] = []
        self._clock_jump: Any = None
        self._input: FrameInput | None = None
        self._buffer: deque[SyncedSet] = deque(maxlen=SCORE_BUFFER_SETS)
        self._buffer_lock = threading.Lock()
        self._service_slots = threading.BoundedSemaphore(SERVICE_SLOTS)
        self._errors_logged: set[tuple[str, type]] = set()

        # Lifecycle publishers: they publish only while the node is active.
        self._progress_pub = self.create_lifecycle_publisher(Progress, '~/progress', 10)
        self._reward_pub = self.create_lifecycle_publisher(Reward, '~/reward', 10)
        self._episode_pub = self.create_lifecycle_publisher(
            EpisodeEvent, '~/episode',
            QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        # Diagnostics in every state (an unconfigured node says why), on their own group so a
        # long configure (model loading) does not silence them.
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(period, self._diagnostics_callback,
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # -- lifecycle transitions -------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The lifecycle state's label (unconfigured, inactive, active, finalized, ...)."""
        # rclpy keeps the state machine in this attribute and has no public getter.
        return self._state_machine.current_state[1]

    def start_up(self) -> str | None:
        """Configure and activate (``autostart``); returns None, or why a transition failed."""
        for transition in (self.trigger_configure, self.trigger_activate):
            with self._transition_lock:
                if transition() is not TransitionCallbackReturn.SUCCESS:
                    return self._error or f'{transition.__name__} failed'
        return None

    def _change_state(self, change_state: Callable[[Any, Any], Any], request: Any,
                      response: Any) -> Any:
        """The ``change_state`` service: one transition at a time, none can raise.

        A request while a transition runs is answered ``success: false`` at once (a lifecycle
        manager retries); so is a transition that does not exist from the current state.
        """
        if not self._transition_lock.acquire(blocking=False):
            self.get_logger().warning(
                f'change_state refused: a transition is in progress (state {self.state})')
            response.success = False
            return response
        try:
            return change_state(request, response)
        except Exception as err:  # noqa: BLE001 - e.g. rcl's error for an invalid transition
            self.get_logger().error(f'change_state failed: {err}')
            response.success = False
            return response
        finally:
            self._transition_lock.release()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = read(self)
            goal = self._initial_goal()
        except GrmError as err:
            self.config = None
            return self._failed('configure', err)
        cfg = self.config
        if self._retiring is not None:      # never two models resident at once
            if not self._retiring.stop(cfg.transition_timeout_s):
                return self._failed('configure', 'the previous model is still being freed '
                                    '(its loader has not returned); configure again later')
            self._retiring = None
        self._stats = NodeStats(cfg.cameras, cfg.stale_after_s, cfg.constant_output_steps,
                                time.monotonic())
        self._input = FrameInput(cfg, self._stats, on_time_jump=self._time_jumped,
                                 warn=self._warn, stale_after_s=cfg.stale_after_s)
        self._worker = InferenceWorker(
            partial(self._backend_factory, cfg), cfg.engine, cfg.profile, task=cfg.task,
            goal=goal, queue_length=cfg.queue_length, load_retry_s=cfg.load_retry_s,
            logger=self.get_logger(),
            on_result=self._publish_result, on_event=self._publish_event,
            on_fatal=self.fail)
        cams = ', '.join(f'{c.role}={c.topic} ({c.transport.value})' for c in cfg.cameras)
        model = f"{cfg.backend_options.get('model', cfg.backend)} ({cfg.backend})"
        self.get_logger().info(
            f'cameras: {cams}; trigger {cfg.trigger.value}, every '
            f'{cfg.engine.sampling.interval_s} s of {cfg.stamp_policy.value} time; model '
            f'{model} (profile {cfg.profile.name}); loading')
        self._worker.start()
        try:    # loading may take minutes: the transition waits, bounded
            self._worker.loaded.result(timeout=cfg.transition_timeout_s)
        except TimeoutError:
            self._worker.cancel_load()
            self._teardown()
            return self._failed('configure', f'the model did not load within '
                                f'lifecycle.transition_timeout_s ({cfg.transition_timeout_s:g} '
                                's); the load was cancelled and what it built is freed')
        except Exception as err:  # noqa: BLE001 - any loading error fails configure, not the node
            self._teardown()
            return self._failed('configure', err)
        self._create_services()
        self._error = ''
        self.get_logger().info(f'configured: model {model!r} loaded and warmed up')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._worker is not None
        self._create_inputs()
        super().on_activate(state)          # the lifecycle publishers
        bound = self.config.transition_timeout_s
        try:    # may reload a released model: bounded like configure
            outcome = self._worker.activate().result(timeout=bound)
        except TimeoutError:    # cancel the reload; the queued activation then fails
            self._worker.deactivate(self.config.release_on_deactivate)
            outcome = Reply(False, f'not active within lifecycle.transition_timeout_s '
                                   f'({bound:g} s); the reload was cancelled and freed')
        if not outcome.success:
            self._destroy_inputs()
            super().on_deactivate(state)
            return self._failed('activate', outcome.message)
        self._error = ''
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._worker is not None and self.config is not None
        self._destroy_inputs()
        done = self._worker.deactivate(self.config.release_on_deactivate)
        self._publish_event(WorkerEvent(EventKind.PAUSED, self._worker.episode_id or '',
                                        detail='deactivated: no rewards until activated'))
        outcome = self._wait(done, self.config.transition_timeout_s)
        self.get_logger().info(outcome.message)
        super().on_deactivate(state)
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self.get_logger().info('cleaned up: model released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        self.stop_requested.set()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'error in a transition from {state.label}; cleaning up')
        self._destroy_inputs()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _failed(self, transition: str, err: object) -> TransitionCallbackReturn:
        """Log a failed transition and keep its reason for /diagnostics and ``start_up``."""
        self._error = str(err)
        self.get_logger().error(f'{transition} failed: {err}')
        return TransitionCallbackReturn.FAILURE

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Our parameters are read by ``configure``: change them only while unconfigured."""
        ours = [p.name for p in params if p.name in PARAM_NAMES]
        if ours and self.state != 'unconfigured':
            return SetParametersResult(successful=False, reason=(
                f'{", ".join(ours)}: read by configure; change while unconfigured (the node is '
                f'{self.state}: deactivate and clean up first)'))
        return SetParametersResult(successful=True)

    def _create_services(self) -> None:
        group = ReentrantCallbackGroup()
        qos = QoSProfile(depth=SERVICE_QUEUE_DEPTH, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)
        self._service_handles = [
            self.create_service(srv_type, name, partial(self._guarded_service, name, handler),
                                qos_profile=qos, callback_group=group)
            for srv_type, name, handler in (
                (TriggerSrv, '~/reset', self._reset_callback),
                (SetTask, '~/set_task', self._set_task_callback),
                (SetGoal, '~/set_goal', self._set_goal_callback),
                (ScoreTransition, '~/score_transition', self._score_callback))]

    def _create_inputs(self) -> None:
        """Camera subscriptions and the clock-jump watch (activate)."""
        cfg = self.config
        assert cfg is not None
        qos = QoSProfile(
            depth=cfg.qos_depth, history=HistoryPolicy.KEEP_LAST,
            reliability=(ReliabilityPolicy.RELIABLE if cfg.reliability is Reliability.RELIABLE
                         else ReliabilityPolicy.BEST_EFFORT))
        self._cameras = CameraThread(self, cfg.cameras, qos, self._guarded_frame, self.fail)
        self._clock_jump = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(
                nanoseconds=-max(cfg.sync_slop_ns, 1)), on_clock_change=False),
            post_callback=self._clock_jumped)

    def _destroy_inputs(self) -> None:
        if self._cameras is not None:
            self._cameras.stop()
            self._cameras = None
        if self._clock_jump is not None:
            self._clock_jump.unregister()
            self._clock_jump = None

    def _teardown(self) -> None:
        """Stop the worker (it closes the backend) and remove the services (cleanup)."""
        if self._worker is not None and not self._worker.stop(WORKER_STOP_TIMEOUT_S):
            self.get_logger().warning(
                f'the inference worker did not stop within {WORKER_STOP_TIMEOUT_S:g} s; the '
                'model is freed when its call returns (configure waits for that)')
            self._retiring = self._worker
        self._worker = None
        for service in self._service_handles:
            self.destroy_service(service)
        self._service_handles = []
        with self._buffer_lock:
            self._buffer.clear()
        if self._input is not None:
            self._input.forget()
        gc.collect()

    def _initial_goal(self) -> np.ndarray | None:
        assert self.config is not None
        path = self.config.goal_image
        if not path:
            return None
        try:
            return read_image(path, self.config.max_input_pixels)
        except GrmError as err:
            raise ConfigError(f'parameter goal_image: {err}') from None

    # -- camera input (camera callback group) --------------------------------------------------

    def _guarded_frame(self, index: int, data: bytes, info: dict[str, Any]) -> None:
        """The camera callback (serialized frame): the pipeline's input, never waits.

        An unexpected error drops the frame, not the node.
        """
        try:
            for synced in self._input.frame(
                    index, data, rx=time.monotonic(), now_ns=self.get_clock().now().nanoseconds,
                    received_ns=info.get('received_timestamp') or 0):
                self._synced(synced)
        except Exception as err:  # noqa: BLE001 - the callback boundary: log, count, go on
            self._stats.bad_frame(index)
            self._callback_error(f'camera {self.config.cameras[index].role}', err)

    def _clock_jumped(self, jump: TimeJump) -> None:
        """The ROS clock went back (``use_sim_time`` and a looping ``/clock``)."""
        try:
            self._input.clock_jumped(
                f'the ROS clock jumped back {-jump.delta.nanoseconds / 1e9:.3f} s')
        except Exception as err:  # noqa: BLE001 - a clock callback must never raise
            self._callback_error('clock jump', err)

    def _time_jumped(self, reason: str) -> None:
        """Start a new episode after a jump back in time (the input has forgotten its frames).

        The buffered sets go too, so no BEFORE from before the jump is ever paired with an
        AFTER from after it.
        """
        with self._buffer_lock:
            self._buffer.clear()
        self.get_logger().warning(f'{reason}: starting a new episode')
        self._worker.reset(detail=reason)

    def _warn(self, message: str) -> None:
        self.get_logger().warning(message, throttle_duration_sec=WARN_THROTTLE_S)

    def _synced(self, synced: SyncedSet) -> None:
        if self.config.trigger is Trigger.SERVICE:
            with self._buffer_lock:
                self._buffer.append(synced)
            return
        ticket = self._worker.offer(synced.stamp_ns)
        if ticket is not None:
            self._worker.submit(ticket, self._queued(synced))

    def _queued(self, synced: SyncedSet) -> QueuedSample:
        """A due set, decoded only when the worker scores it (a bad frame is counted then)."""
        cfg = self.config
        roles = [camera.role for camera in cfg.cameras]

        def load() -> Sample:
            try:
                return decode_set(synced, roles, cfg.max_input_pixels)
            except images.ViewError as err:
                self._input.bad_frame(err.index, err.error)
                raise

        return QueuedSample(synced.stamp_ns, synced.items[FRONT].frame.frame_id, load)

    # -- worker output (worker thread) ---------------------------------------------------------

    def _publish_result(self, result: StepResult, frame_id: str) -> None:
        self._stats.result(result)
        self._progress_pub.publish(progress_msg(result, frame_id))
        reward = reward_msg(result, frame_id)
        if reward is not None:
            self._reward_pub.publish(reward)

    def _publish_event(self, event: WorkerEvent) -> None:
        stamp = self.get_clock().now().nanoseconds if event.stamp_ns is None else event.stamp_ns
        front = self._input.latest_front if self._input is not None else None
        self._episode_pub.publish(
            episode_event_msg(event, stamp, front.frame_id if front else ''))
        self.get_logger().info(f'{event.kind.name} {event.episode_id!r}: {event.detail}')

    def fail(self, err: BaseException) -> None:
        """A fatal error: log it as FATAL and make :func:`main` stop with exit code 1."""
        self.fatal_error = err
        self.get_logger().fatal(f'{type(err).__name__}: {err}; the node stops')
        self.stop_requested.set()

    # -- services (reentrant group: they may wait for the worker) -----------------------------

    def _guarded_service(self, name: str, handler: Callable[[Any, Any], Any], request: Any,
                         response: Any) -> Any:
        """A service callback's boundary: bounded waiting, and no error ends the node.

        Without a free slot (:data:`SERVICE_SLOTS` calls already wait for the worker) the call
        is refused at once. An unexpected error is answered as a failure naming it.
        """
        if not self._service_slots.acquire(blocking=False):
            self._stats.service_refused()
            response.success = False
            response.message = (f'busy: {SERVICE_SLOTS} calls are already waiting for the '
                                'inference worker; call again')
            return response
        try:
            return handler(request, response)
        except Exception as err:  # noqa: BLE001 - the callback boundary: answer, log, count
            self._callback_error(f'service {name}', err)
            response.success = False
            response.message = f'internal error: {type(err).__name__}: {err}'
            return response
        finally:
            self._service_slots.release()

    def _callback_error(self, where: str, err: Exception) -> None:
        """Count an unexpected error; log it with its traceback the first time per kind."""
        self._stats.callback_error()
        key = (where, type(err))
        if key in self._errors_logged:
            self.get_logger().error(f'{where}: {type(err).__name__}: {err}',
                                    throttle_duration_sec=WARN_THROTTLE_S)
            return
        self._errors_logged.add(key)
        self.get_logger().error(f'{where}: unexpected {type(err).__name__}: {err}; the node '
                                f'stays up\n{traceback.format_exc()}')

    def _wait(self, future: Future[Reply], timeout_s: float = SERVICE_TIMEOUT_S) -> Reply:
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            return Reply(False, f'no answer from the inference worker within '
                                  f'{timeout_s:g} s (the request stays queued)')

    def _reset_callback(self, request: TriggerSrv.Request,
                        response: TriggerSrv.Response) -> TriggerSrv.Response:
        outcome = self._wait(self._worker.reset())
        response.success, response.message = outcome.success, outcome.message
        return response

    def _set_task_callback(self, request: SetTask.Request,
                           response: SetTask.Response) -> SetTask.Response:
        outcome = self._wait(self._worker.set_task(request.task, request.episode_id))
        response.success, response.message = outcome.success, outcome.message
        response.episode_id = outcome.episode_id
        return response

    def _set_goal_callback(self, request: SetGoal.Request,
                           response: SetGoal.Response) -> SetGoal.Response:
        try:
            goal, detail = self._goal_from(request)
        except GrmError as err:
            response.success, response.message = False, str(err)
            return response
        outcome = self._wait(self._worker.set_goal(goal, detail, request.episode_id))
        response.success, response.message = outcome.success, outcome.message
        response.episode_id = outcome.episode_id
        return response

    def _goal_from(self, request: SetGoal.Request) -> tuple[np.ndarray, str]:
        budget = self.config.max_input_pixels
        if request.source == SetGoal.Request.FROM_FILE:
            return read_image(request.path, budget), f'goal from file {request.path!r}'
        if request.source == SetGoal.Request.FROM_IMAGE:
            return images.image_to_rgb(request.image, budget), 'goal from the request image'
        if request.source == SetGoal.Request.CAPTURE_FRONT:
            front = self._input.latest_front
            if front is None:
                raise ImageError('no front camera frame received yet to capture')
            return (images.to_rgb(front, budget),
                    f'goal captured from the front frame at {front.stamp_ns} ns')
        raise ConfigError(f'source must be FROM_FILE (0), FROM_IMAGE (1) or CAPTURE_FRONT (2), '
                          f'got {request.source!r}')

    def _score_callback(self, request: ScoreTransition.Request,
                        response: ScoreTransition.Response) -> ScoreTransition.Response:
        outcome, frame_id = self._score(time_to_ns(request.before_stamp),
                                        time_to_ns(request.after_stamp))
        response.success, response.message = outcome.success, outcome.message
        if outcome.result is not None:
            response.progress = progress_msg(outcome.result, frame_id)
            response.reward = reward_msg(outcome.result, frame_id) or Reward()
        return response

    def _score(self, before_ns: int, after_ns: int) -> tuple[Reply, str]:
        """Score buffered BEFORE -> AFTER; returns the outcome and the AFTER front frame."""
        if self.config.trigger is not Trigger.SERVICE:
            return Reply(False, "~/score_transition needs the parameter trigger:='service' "
                                  '(with interval triggering the node scores by itself)'), ''
        after = self._lookup(after_ns)
        if after is None:
            return Reply(False, f'no buffered synchronized sample within the sync slop of '
                                  f'after_stamp {after_ns} ns'), ''
        before = self._lookup(before_ns) if before_ns else None
        after_item = self._queued(after)
        before_item = self._queued(before) if before is not None else None
        outcome = self._wait(self._worker.score(before_ns, before_item, after_item,
                                                self.config.sync_slop_ns))
        return outcome, after_item.frame_id

    def _lookup(self, stamp_ns: int) -> SyncedSet | None:
        """The buffered set nearest to ``stamp_ns``, if within the sync slop."""
        with self._buffer_lock:
            best = min(self._buffer, key=lambda s: abs(s.stamp_ns - stamp_ns), default=None)
        if best is None or abs(best.stamp_ns - stamp_ns) > self.config.sync_slop_ns:
            return None
        return best

    # -- diagnostics and shutdown -------------------------------------------------------------

    def _diagnostics_callback(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        name = self.get_fully_qualified_name()
        worker, stats = self._worker, self._stats
        if worker is None or stats is None:
            array.status = [unconfigured_status(name, self.state, self._error)]
        else:
            backend = worker.backend
            model = ModelInfo(backend.model_id if backend else '',
                              str(getattr(backend, 'device', '')), worker.episode_id or '')
            state = self.state + (f': {worker.load_error}' if worker.load_error else '')
            array.status = stats.report(time.monotonic(), name, ready=worker.ready,
                                        model=model, sync=self._input.sync.stats(),
                                        worker=worker.counters(), state=state)
        self._diag_pub.publish(array)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` began."""
        return self._closed

    def close(self) -> None:
        """Stop scoring (interrupting a model call), publish SHUTDOWN if active, free the model.

        Idempotent; called by :meth:`destroy_node` and the shutdown transition. The node's
        context must still be valid.
        """
        if self._closed:
            return
        self._closed = True
        worker = self._worker
        active = worker is not None and worker.ready
        episode = (worker.episode_id if worker else None) or ''
        self._destroy_inputs()
        self._teardown()
        if not active or not self.context.ok():   # nothing to announce, or no way to
            return
        self._publish_event(WorkerEvent(EventKind.SHUTDOWN, episode, detail='node stopping'))
        # The process may exit right after: let the readers acknowledge the last event.
        self._episode_pub.wait_for_all_acked(Duration(seconds=1.0))

    def destroy_node(self) -> None:
        if hasattr(self, '_worker'):
            self.close()
        super().destroy_node()


def _spin(executor: MultiThreadedExecutor, node: RewardNode) -> None:
    """Spin until shutdown; an error escaping the executor is fatal (never a silent exit 0)."""
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception as err:  # noqa: BLE001 - the executor boundary: never exit 0 after it
        if not node.closed:     # handles destroyed by the shutdown itself are no failure
            node.get_logger().error(traceback.format_exc())
            node.fail(err)
    finally:
        node.stop_requested.set()


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM or a fatal error; returns the exit code.

    rclpy's own signal handler would shut the context down before SHUTDOWN could be published,
    so signals raise ``KeyboardInterrupt`` in this (main) thread instead while the executor
    spins on another one; the node is then closed with its context still valid.
    """
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    executor = MultiThreadedExecutor(num_threads=4)
    node: RewardNode | None = None
    spin: threading.Thread | None = None
    try:
        node = RewardNode()
        executor.add_node(node)
        spin = threading.Thread(target=_spin, args=(executor, node), daemon=True)
        spin.start()
        if node.autostart and (reason := node.start_up()) is not None:
            rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {reason}')
            return 1
        node.stop_requested.wait()
    except GrmError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {err}')
        return 1
    except KeyboardInterrupt:
        pass
    except Exception as err:  # noqa: BLE001 - the process boundary: FATAL and exit 1
        rclpy.logging.get_logger(NODE_NAME).fatal(
            f'{"cannot start" if node is None else "stopped"}: unexpected '
            f'{type(err).__name__}: {err}\n{traceback.format_exc()}')
        return 1
    finally:
        if node is not None:
            node.close()
        executor.shutdown(timeout_sec=WORKER_STOP_TIMEOUT_S)
        if spin is not None:
            spin.join(timeout=WORKER_STOP_TIMEOUT_S)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 1 if node is not None and node.fatal_error is not None else 0

if __name__ == '__main__':
    raise SystemExit(main())
