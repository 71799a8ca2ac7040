"""The reward node's services: ``~/reset``, ``~/set_task``, ``~/set_goal``, ``~/score_transition``.

They exist from ``configure`` to ``cleanup`` and run in one reentrant callback group, because they
wait (bounded) for the inference worker while the camera callbacks keep flowing. At most
:data:`SERVICE_SLOTS` calls wait at a time; more are answered ``busy`` at once, so a flood of
calls never occupies the executor threads. An unexpected error is answered as a failure.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger as TriggerSrv

from ..core.errors import ConfigError, GrmError, ImageError
from ..core.sync import SyncedSet
from ..files.frames import read_image
from ..msg import Reward
from ..pipeline import images
from ..pipeline.input import FrameInput
from ..pipeline.params import NodeConfig, Trigger
from ..pipeline.worker import InferenceWorker, QueuedSample, Reply
from ..srv import ScoreTransition, SetGoal, SetTask
from .diagnostics import NodeStats
from .messages import progress_msg, reward_msg, time_to_ns

#: How long a service waits for the worker (a model step, or the step in flight before a reset).
SERVICE_TIMEOUT_S = 60.0
#: Synchronized sets kept for ~/score_transition (trigger=service): the recent past a learner
#: may ask about. Raw messages are kept, so memory is this times the size of one set.
SCORE_BUFFER_SETS = 32
#: Service calls that may wait for the worker at once; further calls are refused at once. Keeps
#: executor threads free for the cameras however fast a client calls.
SERVICE_SLOTS = 2
#: Requests (and answers) a service keeps in DDS while the executor, or the caller, is behind
#: (the default is 10). A reliable KEEP_LAST history drops the oldest unacknowledged one when full,
#: and a dropped request or answer leaves its caller waiting forever: 1000 keeps 10 s of a
#: 100 calls/s flood, so a stall of seconds on either side loses no call.
SERVICE_QUEUE_DEPTH = 1000


def wait_reply(future: Future[Reply], timeout_s: float = SERVICE_TIMEOUT_S) -> Reply:
    """The worker's answer, or a failure naming the bound once it passed."""
    try:
        return future.result(timeout=timeout_s)
    except TimeoutError:
        return Reply(False, f'no answer from the inference worker within '
                              f'{timeout_s:g} s (the request stays queued)')


def initial_goal(config: NodeConfig) -> np.ndarray | None:
    """The goal image the ``goal_image`` parameter names (configure), or None.

    Raises:
        ConfigError: The file cannot be used; the message names the parameter.
    """
    if not config.goal_image:
        return None
    try:
        return read_image(config.goal_image, config.max_input_pixels)
    except GrmError as err:
        raise ConfigError(f'parameter goal_image: {err}') from None


class ScoreBuffer:
    """The recent synchronized sets ``~/score_transition`` may name (any thread)."""

    def __init__(self) -> None:
        self._sets: deque[SyncedSet] = deque(maxlen=SCORE_BUFFER_SETS)
        self._lock = threading.Lock()

    def append(self, synced: SyncedSet) -> None:
        with self._lock:
            self._sets.append(synced)

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()

    def nearest(self, stamp_ns: int, slop_ns: int) -> SyncedSet | None:
        """The buffered set nearest to ``stamp_ns``, if within ``slop_ns``."""
        with self._lock:
            best = min(self._sets, key=lambda s: abs(s.stamp_ns - stamp_ns), default=None)
        if best is None or abs(best.stamp_ns - stamp_ns) > slop_ns:
            return None
        return best


class NodeServices:
    """The services of one configuration (made by ``configure``, destroyed by ``cleanup``).

    Args:
        queued: Turns a buffered set into a sample the worker decodes (the node's rule).
        on_error: Counts and logs an unexpected error at a callback's boundary.
    """

    def __init__(self, node: Node, worker: InferenceWorker, config: NodeConfig,
                 frame_input: FrameInput, stats: NodeStats, buffer: ScoreBuffer,
                 queued: Callable[[SyncedSet], QueuedSample],
                 on_error: Callable[[str, Exception], None]) -> None:
        self._node = node
        self._worker = worker
        self.config = config
        self._input = frame_input
        self._stats = stats
        self._buffer = buffer
        self._queued = queued
        self._callback_error = on_error
        self._service_slots = threading.BoundedSemaphore(SERVICE_SLOTS)
        group = ReentrantCallbackGroup()
        qos = QoSProfile(depth=SERVICE_QUEUE_DEPTH, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)
        self._handles = [
            node.create_service(srv_type, name, partial(self._guarded_service, name, handler),
                                qos_profile=qos, callback_group=group)
            for srv_type, name, handler in (
                (TriggerSrv, '~/reset', self._reset_callback),
                (SetTask, '~/set_task', self._set_task_callback),
                (SetGoal, '~/set_goal', self._set_goal_callback),
                (ScoreTransition, '~/score_transition', self._score_callback))]

    def destroy(self) -> None:
        for service in self._handles:
            self._node.destroy_service(service)
        self._handles = []

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

    def _reset_callback(self, request: TriggerSrv.Request,
                        response: TriggerSrv.Response) -> TriggerSrv.Response:
        outcome = wait_reply(self._worker.reset())
        response.success, response.message = outcome.success, outcome.message
        return response

    def _set_task_callback(self, request: SetTask.Request,
                           response: SetTask.Response) -> SetTask.Response:
        outcome = wait_reply(self._worker.set_task(request.task, request.episode_id))
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
        outcome = wait_reply(self._worker.set_goal(goal, detail, request.episode_id))
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
        slop = self.config.sync_slop_ns
        after = self._buffer.nearest(after_ns, slop)
        if after is None:
            return Reply(False, f'no buffered synchronized sample within the sync slop of '
                                  f'after_stamp {after_ns} ns'), ''
        before = self._buffer.nearest(before_ns, slop) if before_ns else None
        after_item = self._queued(after)
        before_item = self._queued(before) if before is not None else None
        outcome = wait_reply(self._worker.score(before_ns, before_item, after_item, slop))
        return outcome, after_item.frame_id
