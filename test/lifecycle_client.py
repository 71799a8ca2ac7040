"""A small lifecycle manager for tests: drives a managed node through its ROS services as
nav2's lifecycle manager does (``change_state`` with a timeout, retried while refused), and
reads ``get_state`` and parameters the same way. Every call is bounded."""

from __future__ import annotations

import time
from typing import Any

from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter


class CallTimeoutError(AssertionError):
    """A service did not answer within its bound (what a lifecycle manager would see)."""


class LifecycleClient:
    """Clients for one managed node, made on ``node`` (spun elsewhere)."""

    def __init__(self, node: Node, target: str) -> None:
        self._node = node
        self.target = target
        self._change = node.create_client(ChangeState, f'{target}/change_state')
        self._get = node.create_client(GetState, f'{target}/get_state')
        self._params = node.create_client(GetParameters, f'{target}/get_parameters')
        self._set = node.create_client(SetParameters, f'{target}/set_parameters')

    def _call(self, client: Any, request: Any, timeout_s: float) -> Any:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise CallTimeoutError(f'{client.srv_name} is not available')
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                client.remove_pending_request(future)
                raise CallTimeoutError(f'{client.srv_name}: no answer within {timeout_s} s')
            time.sleep(0.01)
        return future.result()

    def change_state(self, label: str, timeout_s: float = 30.0, retries: int = 3,
                     retry_delay_s: float = 0.2) -> bool:
        """Request a transition by label (``configure``, ``activate``, ``shutdown``, ... as
        ``ros2 lifecycle set`` does); a refusal (``success: false``) is retried ``retries``
        times, a timeout is raised as :class:`CallTimeoutError`. Returns the last answer's
        ``success``."""
        request = ChangeState.Request()
        request.transition.label = label
        for attempt in range(retries + 1):
            if self._call(self._change, request, timeout_s).success:
                return True
            if attempt < retries:
                time.sleep(retry_delay_s)
        return False

    def get_state(self, timeout_s: float = 5.0) -> str:
        return self._call(self._get, GetState.Request(), timeout_s).current_state.label

    def get_parameter(self, name: str, timeout_s: float = 5.0) -> Any:
        """The parameter's value message (``ParameterValue``)."""
        return self._call(self._params, GetParameters.Request(names=[name]), timeout_s).values[0]

    def set_parameter(self, name: str, value: Any, timeout_s: float = 5.0) -> str:
        """Set one parameter as ``ros2 param set`` does; '' when accepted, else the reason."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()])
        [result] = self._call(self._set, request, timeout_s).results
        return '' if result.successful else result.reason

    def destroy(self) -> None:
        for client in (self._change, self._get, self._params, self._set):
            self._node.destroy_client(client)
