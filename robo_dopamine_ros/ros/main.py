"""The process entry point of the reward node (``reward_node``): run it until a signal, a
shutdown transition or a fatal error, and exit with a code that tells which (a fatal error never
exits 0)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from collections.abc import Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from ..core.errors import GrmError
from ..pipeline.param_table import NODE_NAME
from .node import WORKER_STOP_TIMEOUT_S, BackendFactory, RewardNode, load_backend

#: Executor threads: lifecycle and parameter services, node services, diagnostics, /clock.
EXECUTOR_THREADS = 4


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


def params_files(args: Sequence[str]) -> list[str]:
    """The ``--params-file`` arguments of the ``--ros-args`` sections of a command line."""
    files, in_ros_args = [], False
    for arg, following in zip(args, [*args[1:], None], strict=True):
        if arg == '--ros-args':
            in_ros_args = True
        elif arg == '--':
            in_ros_args = False
        elif in_ros_args and arg == '--params-file' and following is not None:
            files.append(following)
    return files


def main(args: list[str] | None = None, backend_factory: BackendFactory = load_backend) -> int:
    """Run the node until SIGINT/SIGTERM or a fatal error; returns the exit code.

    ``backend_factory`` replaces the node's (a benchmark's test double that keeps no record).

    rclpy's own signal handler would shut the context down before SHUTDOWN could be published,
    so signals raise ``KeyboardInterrupt`` in this (main) thread instead while the executor
    spins on another one; the node is then closed with its context still valid.
    """
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    node: RewardNode | None = None
    spin: threading.Thread | None = None
    try:
        node = RewardNode(params_files=params_files(sys.argv if args is None else args),
                          backend_factory=backend_factory)
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
