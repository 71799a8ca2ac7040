"""Camera subscriptions on their own thread and executor, apart from the node's slow work.

The reward node's executor serves services that wait for the model, lifecycle transitions that
load it and the diagnostics timer, on several threads; rclpy's multi-threaded executor costs
noticeably more per callback than a single-threaded one (bench/results/node_overhead.md). The
cameras' callbacks are short (parse a few header fields, synchronize, enqueue), so they get a
single-threaded executor of their own on a dedicated thread, and a lean internal node
``<node name>_cameras`` in the same namespace (no parameter services, no rosout): a camera
callback never shares a thread with slow work, and the cameras cost what a bare subscriber costs.

Topic names are resolved by the reward node (its namespace and remappings) and subscribed fully
qualified, because the internal node ignores the process's command-line arguments (they would
rename it to the reward node).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image

from ..pipeline.params import CameraConfig, Transport

#: How long stopping waits for the camera thread to leave a callback.
STOP_TIMEOUT_S = 3.0


class CameraThread:
    """Raw (serialized) subscriptions to the configured cameras, spun on their own thread.

    Args:
        owner: The reward node: its context, name, namespace and topic remappings are used.
        cameras: The configured cameras; ``callback(index, data, info)`` gets each frame.
        qos: Each camera's QoS (ros/qos.py: overrides are read on the reward node, since this
            internal node has no parameters of its own).
        on_error: Called with an error that escaped the executor (the node treats it as fatal).
    """

    def __init__(self, owner: Node, cameras: Sequence[CameraConfig], qos: Sequence[QoSProfile],
                 callback: Callable[[int, bytes, dict[str, Any]], None],
                 on_error: Callable[[BaseException], None]) -> None:
        self._node = Node(f'{owner.get_name()}_cameras', namespace=owner.get_namespace(),
                          context=owner.context, use_global_arguments=False,
                          enable_rosout=False, start_parameter_services=False)
        self.topics = [owner.resolve_topic_name(cam.topic) for cam in cameras]
        for index, (cam, topic, profile) in enumerate(zip(cameras, self.topics, qos,
                                                          strict=True)):
            self._node.create_subscription(
                CompressedImage if cam.transport is Transport.COMPRESSED else Image, topic,
                lambda data, info, i=index: callback(i, data, info), profile, raw=True)
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self._node)
        self._on_error = on_error
        self._stopping = False
        self._thread = threading.Thread(target=self._spin, name='cameras', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass
        except Exception as err:  # noqa: BLE001 - the thread's boundary: the node decides
            if not self._stopping:
                self._on_error(err)

    def stop(self) -> None:
        """Stop receiving, join the thread, destroy the subscriptions and the internal node."""
        self._stopping = True
        self._executor.shutdown(timeout_sec=STOP_TIMEOUT_S)
        self._thread.join(STOP_TIMEOUT_S)
        self._node.destroy_node()
