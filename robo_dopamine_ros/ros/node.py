"""The reward node ``robo_dopamine``: camera streams in, GRM progress and shaped reward out.

A managed (lifecycle) node that only adapts the ROS-free sample pipeline (pipeline/) to ROS: its
transitions drive the inference worker and the model's state machine; the camera side
(ros/camera_input.py), the services (ros/services.py) and the process entry point (ros/main.py)
live apart. Names, parameters, threads and callback groups: docs/node-contract.md.

Hardening. Every image is sized from its header against ``input.max_pixels`` before it is
decoded. An unexpected error in a callback is caught at the callback's boundary, logged with its
traceback (once per place and error type), counted in /diagnostics and, for a service, answered
as a failure: one bad message never ends the node. Header time (or the ROS clock) jumping back
beyond the sync slop starts a new episode. Transitions are bounded (``lifecycle.
transition_timeout_s``) and serialized; a failed one leaves the node usable. A fatal error (the
worker lost, an error escaping the executor) ends the process with a FATAL line and exit code 1.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ..backends import factory
from ..backends.threads import bound_cpu_threads
from ..core.errors import GrmError
from ..core.result import StepResult
from ..core.types import GrmBackend
from ..msg import Confidence, EpisodeEvent, Progress, Reward
from ..pipeline.param_table import NODE_NAME, PARAM_NAMES, PARAMS_BY_NAME
from ..pipeline.params import NodeConfig
from ..pipeline.worker import EventKind, InferenceWorker, Reply, WorkerEvent
from .camera_input import WARN_THROTTLE_S, CameraInput
from .diagnostics import ModelInfo, NodeStats, unconfigured_status
from .messages import confidence_msg, episode_event_msg, progress_msg, reward_msg
from .params import declare, read
from .qos import Entity, QosOverrides
from .services import NodeServices, ScoreBuffer, initial_goal, wait_reply

#: How long shutdown waits for the worker to leave a model call (it is asked to stop first).
WORKER_STOP_TIMEOUT_S = 3.0
BackendFactory = Callable[[NodeConfig], GrmBackend]


def load_backend(config: NodeConfig) -> GrmBackend:
    """The backend named by ``model.backend`` (backends/factory.py); it loads the model (or
    opens the server connection): call it off the executor."""
    return factory.make_backend(config.backend, **config.backend_options)


class RewardNode(LifecycleNodeMixin, Node):
    """Scores synchronized camera samples with the GRM and publishes progress and reward.

    ``configure``: parameters validated, the goal image read, the model loaded and warmed up
    (bounded), the services created; a failure leaves it unconfigured with the reason in the log
    and /diagnostics, and can be retried. ``activate``: cameras and publishers on, READY and an
    episode. ``deactivate``: scoring stops at once (the model call underway is cancelled, never
    published), PAUSED; with ``model.release_on_deactivate`` the model is freed and ``activate``
    reloads it. ``cleanup``: the model released. ``shutdown``: from any state. With
    ``autostart`` (default) ros/main.py drives configure and activate itself.

    Args:
        backend_factory: Builds the backend from the config on the worker thread; default
            :func:`load_backend`. Tests inject slow or failing test doubles here.
        params_files: The ``--params-file`` arguments (a near miss of one of our names in a
            section addressed to this node by name is refused, not ignored).
        **kwargs: Passed to ``rclpy.node.Node`` (``context``, ``parameter_overrides``, ...).

    Raises:
        ConfigError: A parameter override has the wrong type or range, or an unknown name under
            the node's own prefixes.
    """

    def __init__(self, *, backend_factory: BackendFactory = load_backend,
                 params_files: Sequence[str] = (), **kwargs: Any) -> None:
        Node.__init__(self, NODE_NAME, **kwargs)
        # The lifecycle services get a reentrant group of their own: while a transition loads a
        # model, get_state (and, in the default group, the parameter services) keep answering.
        # Transitions themselves are serialized by a guard (:meth:`_change_state`).
        LifecycleNodeMixin.__init__(self, callback_group=ReentrantCallbackGroup())
        self._transition_lock = threading.Lock()
        service = self._service_change_state
        service.callback = partial(self._change_state, service.callback)
        try:
            declare(self, params_files)
            period = PARAMS_BY_NAME['diagnostics.period_s'].check(
                self.get_parameter('diagnostics.period_s').value)
            #: ``qos_overrides.*``: applied to the publishers here, to the cameras at configure.
            self._qos = QosOverrides(self)
            out = partial(self._qos.profile, entity=Entity.PUBLISHER)
            # Lifecycle publishers: they publish only while the node is active.
            self._progress_pub = self.create_lifecycle_publisher(
                Progress, '~/progress', out('~/progress', base=QoSProfile(depth=10)))
            self._reward_pub = self.create_lifecycle_publisher(
                Reward, '~/reward', out('~/reward', base=QoSProfile(depth=10)))
            self._confidence_pub = self.create_lifecycle_publisher(   # model.confidence on
                Confidence, '~/confidence', out('~/confidence', base=QoSProfile(depth=10)))
            self._episode_pub = self.create_lifecycle_publisher(
                EpisodeEvent, '~/episode', out('~/episode', base=QoSProfile(
                    depth=10, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL)))
            # Diagnostics in every state (an unconfigured node says why).
            self._diag_pub = self.create_publisher(
                DiagnosticArray, '/diagnostics', out('/diagnostics', base=QoSProfile(depth=10)))
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
        self._node_services: NodeServices | None = None
        self._inputs: CameraInput | None = None
        self._buffer = ScoreBuffer()
        self._errors_logged: set[tuple[str, type]] = set()
        # The diagnostics timer on its own group (a model load does not silence it) and the
        # steady clock (nor does a sim clock at rest).
        self.create_timer(period, self._diagnostics_callback,
                          callback_group=MutuallyExclusiveCallbackGroup(),
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
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
            camera_qos = self._qos.cameras(self.config)
            goal = initial_goal(self.config)
        except GrmError as err:
            self.config = None
            return self._failed('configure', err)
        cfg = self.config
        if self._retiring is not None:      # never two models resident at once
            if not self._retiring.stop(cfg.transition_timeout_s):
                return self._failed('configure', 'the previous model is still being freed '
                                    '(its loader has not returned); configure again later')
            self._retiring = None
        threads = bound_cpu_threads(cfg.cpu_threads, cfg.backend)
        self._stats = NodeStats(cfg.cameras, cfg.stale_after_s, cfg.constant_output_steps,
                                time.monotonic())
        self._worker = InferenceWorker(
            partial(self._backend_factory, cfg), cfg.engine, cfg.profile, task=cfg.task,
            goal=goal, queue_length=cfg.queue_length, load_retry_s=cfg.load_retry_s,
            logger=self.get_logger(),
            on_result=self._publish_result, on_event=self._publish_event,
            on_fatal=self.fail)
        self._inputs = CameraInput(self, cfg, camera_qos, self._stats, self._worker,
                                   self._buffer, self._callback_error, self.fail)
        for name in self._qos.unused():
            self.get_logger().warning(f'{name}: no publisher or camera subscription of this '
                                      'node has that topic; ignored')
        cams = ', '.join(f'{c.role}={c.topic} ({c.transport.value})' for c in cfg.cameras)
        model = f"{cfg.backend_options.get('model', cfg.backend)} ({cfg.backend})"
        self.get_logger().info(
            f'cameras: {cams}; trigger {cfg.trigger.value}, every '
            f'{cfg.engine.sampling.interval_s} s of {cfg.stamp_policy.value} time; model '
            f'{model} (profile {cfg.profile.name}, {threads} CPU threads); loading')
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
        self._node_services = NodeServices(self, self._worker, cfg, self._inputs.frames,
                                           self._stats, self._buffer, self._inputs.queued,
                                           self._callback_error)
        self._error = ''
        self.get_logger().info(f'configured: model {model!r} loaded and warmed up')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._worker is not None
        self._inputs.start()
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
        outcome = wait_reply(done, self.config.transition_timeout_s)
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

    def _destroy_inputs(self) -> None:
        if self._inputs is not None:
            self._inputs.stop()

    def _teardown(self) -> None:
        """Stop the worker (it closes the backend) and remove the services (cleanup)."""
        if self._worker is not None and not self._worker.stop(WORKER_STOP_TIMEOUT_S):
            self.get_logger().warning(
                f'the inference worker did not stop within {WORKER_STOP_TIMEOUT_S:g} s; the '
                'model is freed when its call returns (configure waits for that)')
            self._retiring = self._worker
        self._worker = None
        if self._node_services is not None:
            self._node_services.destroy()
            self._node_services = None
        self._buffer.clear()
        if self._inputs is not None:
            self._inputs.close()
        gc.collect()

    # -- worker output (worker thread) ---------------------------------------------------------

    def _publish_result(self, result: StepResult, frame_id: str) -> None:
        self._stats.result(result)
        self._progress_pub.publish(progress_msg(result, frame_id))
        for pub, msg in ((self._reward_pub, reward_msg(result, frame_id)),
                         (self._confidence_pub, confidence_msg(result, frame_id))):
            if msg is not None:
                pub.publish(msg)

    def _publish_event(self, event: WorkerEvent) -> None:
        stamp = self.get_clock().now().nanoseconds if event.stamp_ns is None else event.stamp_ns
        inputs = self._inputs
        front = inputs.frames.latest_front if inputs is not None else None
        self._episode_pub.publish(
            episode_event_msg(event, stamp, front.frame_id if front else ''))
        self.get_logger().info(f'{event.kind.name} {event.episode_id!r}: {event.detail}')

    def fail(self, err: BaseException) -> None:
        """A fatal error: log it as FATAL and make :func:`main` stop with exit code 1."""
        self.fatal_error = err
        self.get_logger().fatal(f'{type(err).__name__}: {err}; the node stops')
        self.stop_requested.set()

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
                                        model=model, sync=self._inputs.frames.sync.stats(),
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
