"""The reward node's input side: camera frames through the pipeline's input to the worker.

Made by ``configure``; :meth:`CameraInput.start` (activate) subscribes the cameras (on their own
thread, ros/cameras.py) and watches the ROS clock for jumps back; :meth:`CameraInput.stop`
(deactivate) ends both. A synchronized set goes to the worker when the sampler wants it
(``trigger: interval``) or into the score buffer (``trigger: service``), still serialized: its
images are decoded when the worker scores it (:meth:`CameraInput.queued`), its views side by side
on a small pool owned here (made by configure, shut down by cleanup). No callback here waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rclpy.clock import JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile

from ..core.engine import Sample
from ..core.sync import FRONT, SyncedSet
from ..pipeline import images
from ..pipeline.input import FrameInput, decode_set
from ..pipeline.params import NodeConfig, Trigger
from ..pipeline.worker import InferenceWorker, QueuedSample
from .cameras import CameraThread
from .diagnostics import NodeStats
from .services import ScoreBuffer

#: Minimum seconds between repeats of the same warning about bad input.
WARN_THROTTLE_S = 5.0


class CameraInput:
    """Camera subscriptions, the clock-jump watch and the routing of synchronized sets.

    Args:
        qos: Each camera's subscription QoS (ros/qos.py: the parameters and ROS's overrides).
        on_error: Counts and logs an unexpected error at a callback's boundary.
        on_fatal: An error that escaped the camera thread (the node stops).
    """

    def __init__(self, node: Node, config: NodeConfig, qos: Sequence[QoSProfile],
                 stats: NodeStats, worker: InferenceWorker, buffer: ScoreBuffer,
                 on_error: Callable[[str, Exception], None],
                 on_fatal: Callable[[BaseException], None]) -> None:
        self._node = node
        self._config = config
        self._qos = tuple(qos)
        self._stats = stats
        self._worker = worker
        self._buffer = buffer
        self._on_error = on_error
        self._on_fatal = on_fatal
        self.frames = FrameInput(config, stats, on_time_jump=self._time_jumped, warn=self._warn,
                                 stale_after_s=config.stale_after_s)
        self._cameras: CameraThread | None = None
        self._clock_jump: Any = None
        #: Decodes a due set's views concurrently (one thread per camera; none for one camera).
        self._decoders = (ThreadPoolExecutor(len(config.cameras), thread_name_prefix='decode')
                          if len(config.cameras) > 1 else None)

    def start(self) -> None:
        """Subscribe the cameras and watch the clock (activate)."""
        cfg = self._config
        self._cameras = CameraThread(self._node, cfg.cameras, self._qos, self._guarded_frame,
                                     self._on_fatal)
        self._clock_jump = self._node.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(
                nanoseconds=-max(cfg.sync_slop_ns, 1)), on_clock_change=False),
            post_callback=self._clock_jumped)

    def stop(self) -> None:
        """Unsubscribe and stop watching the clock (deactivate; idempotent)."""
        if self._cameras is not None:
            self._cameras.stop()
            self._cameras = None
        if self._clock_jump is not None:
            self._clock_jump.unregister()
            self._clock_jump = None

    def close(self) -> None:
        """Stop, forget the frames and end the decoding threads (cleanup; idempotent).

        Call it once the worker stopped: a set it still decoded would find no pool (a worker
        that is stopping reports no error).
        """
        self.stop()
        self.frames.forget()
        if self._decoders is not None:
            self._decoders.shutdown(wait=False, cancel_futures=True)

    def _guarded_frame(self, index: int, data: bytes, info: dict[str, Any]) -> None:
        """The camera callback (serialized frame): the pipeline's input, never waits.

        Reception is stamped with the node's clock (sim time under ``use_sim_time``), not the
        middleware's reception time, whose clock depends on the RMW. An unexpected error drops
        the frame, not the node.
        """
        try:
            now_ns = self._node.get_clock().now().nanoseconds  # reception, on the node's clock
            for synced in self.frames.frame(index, data, rx=time.monotonic(), now_ns=now_ns,
                                            received_ns=now_ns):
                self._synced(synced)
        except Exception as err:  # noqa: BLE001 - the callback boundary: log, count, go on
            self._stats.bad_frame(index)
            self._on_error(f'camera {self._config.cameras[index].role}', err)

    def _clock_jumped(self, jump: TimeJump) -> None:
        """The ROS clock went back (``use_sim_time`` and a looping ``/clock``)."""
        try:
            self.frames.clock_jumped(
                f'the ROS clock jumped back {-jump.delta.nanoseconds / 1e9:.3f} s')
        except Exception as err:  # noqa: BLE001 - a clock callback must never raise
            self._on_error('clock jump', err)

    def _time_jumped(self, reason: str) -> None:
        """Start a new episode after a jump back in time (the input has forgotten its frames).

        The buffered sets go too, so no BEFORE from before the jump is ever paired with an
        AFTER from after it.
        """
        self._buffer.clear()
        self._node.get_logger().warning(f'{reason}: starting a new episode')
        self._worker.reset(detail=reason)

    def _warn(self, message: str) -> None:
        self._node.get_logger().warning(message, throttle_duration_sec=WARN_THROTTLE_S)

    def _synced(self, synced: SyncedSet) -> None:
        if self._config.trigger is Trigger.SERVICE:
            self._buffer.append(synced)
            return
        ticket = self._worker.offer(synced.stamp_ns)
        if ticket is not None:
            self._worker.submit(ticket, self.queued(synced))

    def queued(self, synced: SyncedSet) -> QueuedSample:
        """A due set, decoded only when the worker scores it (a bad frame is counted then)."""
        cfg = self._config
        roles = [camera.role for camera in cfg.cameras]

        def load() -> Sample:
            try:
                return decode_set(synced, roles, cfg.max_input_pixels, self._decoders)
            except images.ViewError as err:
                self.frames.bad_frame(err.index, err.error)
                raise

        return QueuedSample(synced.stamp_ns, synced.items[FRONT].frame.frame_id, load)
