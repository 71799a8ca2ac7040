"""Runs the reward node in-process over real DDS (loopback) with a probe node beside it.

Both nodes live in a private ``rclpy.Context`` on this process's test domain, under a unique
namespace, spun by one ``MultiThreadedExecutor`` on a thread. Every wait is bounded and fails with
what was (not) seen; nothing synchronizes by sleeping. Camera QoS is reliable so that a test can
count on every frame arriving.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from robo_dopamine_ros.msg import Confidence, EpisodeEvent, Progress, Reward
from sensor_msgs.msg import CompressedImage, Image

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.ros import convert
from robo_dopamine_ros.ros.node import RewardNode, load_backend

#: One DDS domain for this test process (other processes running tests pick others).
DOMAIN_ID = 100 + os.getpid() % 100
#: Generous: the CI machine has two cores shared with other jobs.
TIMEOUT_S = 30.0
TASK = 'put the cup on the plate'
SEC = 1_000_000_000

T = TypeVar('T')


def frame(seed: int, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A reproducible random RGB frame (random pixels make every digest answer different)."""
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def ros_env() -> dict[str, str]:
    """The environment for a node subprocess: this test domain, discovery on loopback only."""
    env = {k: v for k, v in os.environ.items() if k != '_ROS_WHEELS_BOOTSTRAP_COMPLETE'}
    env.update(ROS_DOMAIN_ID=str(DOMAIN_ID), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    return env


def ros_environment(repo_root: Path, domain_id: int) -> dict[str, str]:
    """The environment ``scripts/env.sh`` gives (venv + install/), DDS on loopback, own domain:
    for subprocesses started outside the already-sourced shell (the demo, the consumer)."""
    if not (repo_root / 'install' / 'setup.bash').is_file():
        raise RuntimeError('no colcon install/: run `make setup` (scripts/build.sh) first')
    base = {k: v for k, v in os.environ.items() if k != '_ROS_WHEELS_BOOTSTRAP_COMPLETE'}
    proc = subprocess.run(['bash', '-c', '. scripts/env.sh >&2 && env -0'], cwd=repo_root,
                          env=base, capture_output=True, timeout=60, check=True)
    env = dict(item.split('=', 1) for item in proc.stdout.decode().split('\0') if '=' in item)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = str(domain_id)
    return env


def node_command(reward_node: Path, ns: str, params: Mapping[str, Any]) -> list[str]:
    """The command line of the installed ``reward_node`` in namespace ``ns`` with ``params``."""
    command = [str(reward_node), '--ros-args', '-r', f'__ns:={ns}']
    for name, value in params.items():
        text = '[' + ','.join(value) + ']' if isinstance(value, list) else value
        command += ['-p', f'{name}:={text}']
    return command


def descendants(pid: int) -> list[int]:
    """Living (not zombie) descendants of ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f'/proc/{entry}/stat').read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if fields[0] != 'Z':
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def start_node(reward_node: Path, cwd: Path, ns: str,
               params: Mapping[str, Any]) -> subprocess.Popen[str]:
    """Start the node as its own process on this test domain; its output goes to cwd/node.log."""
    return subprocess.Popen(node_command(reward_node, ns, params), cwd=cwd, env=ros_env(),
                            stdout=(cwd / 'node.log').open('w'), stderr=subprocess.STDOUT,
                            text=True)


def unique_namespace() -> str:
    """A namespace no other test (or test process on this domain) uses."""
    return f'/t{uuid.uuid4().hex[:10]}'


def wait_until(predicate: Callable[[], T], what: str, timeout: float = TIMEOUT_S,
               poll: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test on the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(poll)


def diag_values(array: DiagnosticArray, name_suffix: str) -> dict[str, str]:
    """The key/values of the status whose name ends with ``name_suffix`` (plus level, message)."""
    status = next(s for s in array.status if s.name.endswith(name_suffix))
    return {'level': str(status.level[0]), 'message': status.message,
            **{kv.key: kv.value for kv in status.values}}


def differences(a: Any, b: Any, ignore: Iterable[str] = ()) -> list[str]:
    """Fields where two messages differ, compared as sent: float32 fields after rounding to
    float32 (a message built locally still holds Python floats), NaN equal to NaN."""
    skip = set(ignore)
    diffs = []
    for name, kind in a.get_fields_and_field_types().items():
        x, y = getattr(a, name), getattr(b, name)
        if name in skip:
            continue
        if hasattr(x, 'get_fields_and_field_types'):
            diffs += [f'{name}.{d}' for d in differences(x, y)]
            continue
        xs, ys = (list(v) if kind.startswith('sequence') else [v] for v in (x, y))
        if 'float' in kind:
            xs, ys = (np.asarray(v, np.float32 if kind.endswith('float>') or kind == 'float'
                                 else np.float64) for v in (xs, ys))
            same = xs.shape == ys.shape and bool(np.all((xs == ys) | (np.isnan(xs)
                                                                     & np.isnan(ys))))
        else:
            same = xs == ys
        if not same:
            diffs.append(f'{name}: {x!r} != {y!r}')
    return diffs


#: Topics the probe collects, relative to the node under test: kind -> (type, topic, latched).
OUTPUTS: dict[str, tuple[Any, str, bool]] = {
    'progress': (Progress, 'robo_dopamine/progress', False),
    'reward': (Reward, 'robo_dopamine/reward', False),
    'confidence': (Confidence, 'robo_dopamine/confidence', False),
    'episode': (EpisodeEvent, 'robo_dopamine/episode', True),
    'diagnostics': (DiagnosticArray, '/diagnostics', False),
}


class Probe:
    """The test's side of the graph: a node in a private context on the test domain that
    collects what the reward node under namespace ``ns`` publishes. Call :meth:`start` to spin.
    """

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node('probe', context=self.context, namespace=ns)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._lock = threading.Lock()
        self._got: dict[str, list[Any]] = {}
        for kind, (msg_type, topic, latched) in OUTPUTS.items():
            store: list[Any] = []
            self._got[kind] = store
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                         else DurabilityPolicy.VOLATILE))
            self.node.create_subscription(msg_type, self.resolve(topic), self._keep(store), qos)

    def _keep(self, store: list[Any]) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self._lock:
                store.append(msg)
        return callback

    def resolve(self, topic: str) -> str:
        """A topic of :data:`OUTPUTS` as seen from outside the namespace."""
        return topic if topic.startswith('/') else f'{self.ns}/{topic}'

    def start(self) -> None:
        self._spin.start()

    def snapshot(self, kind: str) -> list[Any]:
        """A copy of the messages of one kind (a key of :data:`OUTPUTS`) received so far."""
        with self._lock:
            return list(self._got[kind])

    def wait_events(self, *kinds: int, timeout: float = TIMEOUT_S) -> list[EpisodeEvent]:
        """Wait until the episode events received so far include ``kinds`` in this order."""
        def found() -> list[EpisodeEvent] | None:
            events = self.snapshot('episode')
            seen = iter(e.event for e in events)
            return events if all(k in seen for k in kinds) else None
        return wait_until(found, f'episode events {kinds}', timeout)

    def stop(self) -> None:
        """Stop spinning (idempotent): then no callback can run on a node being destroyed."""
        self.executor.shutdown(timeout_sec=5.0)
        if self._spin.ident is not None:
            self._spin.join(timeout=5.0)

    def close(self) -> None:
        self.stop()
        self.node.destroy_node()
        self.context.try_shutdown()


class NodeHarness:
    """The reward node (own namespace, scripted backend by default) beside a :class:`Probe`
    that also publishes the cameras.

    Args:
        params: Parameter overrides on top of the test defaults (reliable QoS, the scripted
            test double, fast diagnostics, one topic per camera under the namespace).
        transports: Camera role -> 'raw' or 'compressed' for the cameras to create; roles left
            out are absent (their topic parameter is '').
        backend_factory: Replaces the node's backend factory (e.g. a slow test double).
        ns: The namespace (default: a unique one), for a test that must name topics first.
        node_args: The node's own command-line arguments (``--ros-args --params-file ...``).

    The defaults keep every frame and every due sample (deep reliable queues, a 10 s staleness
    limit that a loaded CI machine cannot reach), so a test that wants drops asks for them.
    """

    def __init__(self, params: Mapping[str, Any] | None = None,
                 transports: Mapping[str, str] | None = None,
                 backend_factory: Callable[..., Any] = load_backend, ns: str = '',
                 node_args: Sequence[str] = ()) -> None:
        self.ns = ns or unique_namespace()
        self.transports = dict(transports or {'front': 'raw', 'left': 'raw', 'right': 'raw'})
        topics = {role: f'{self.ns}/cam_{role}' for role in self.transports}
        values: dict[str, Any] = {
            'qos.reliability': 'reliable', 'model.backend': 'scripted-test-double',
            'qos.depth': 100, 'diagnostics.period_s': 0.1, 'queue.length': 100,
            'diagnostics.stale_after_s': 10.0,
        }
        for role in ('front', 'left', 'right'):
            values[f'cameras.{role}.topic'] = topics.get(role, '')
            values[f'cameras.{role}.transport'] = self.transports.get(role, 'raw')
        values.update(params or {})
        self.probe = Probe(self.ns)
        try:
            self.node = RewardNode(context=self.probe.context, namespace=self.ns,
                                   parameter_overrides=[Parameter(k, value=v)
                                                        for k, v in values.items()],
                                   cli_args=list(node_args), backend_factory=backend_factory)
        except BaseException:
            self.probe.close()
            raise
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.cameras = {
            role: self.probe.node.create_publisher(
                CompressedImage if kind == 'compressed' else Image, topics[role], reliable)
            for role, kind in self.transports.items()}
        self.probe.executor.add_node(self.node)
        self.probe.start()
        try:
            if self.node.autostart:
                if (reason := self.node.start_up()) is not None:
                    raise ConfigError(reason)
                self.wait_cameras()
            wait_until(lambda: all(
                self.node.count_subscribers(self.probe.resolve(OUTPUTS[kind][1])) > 0
                for kind in ('progress', 'reward', 'episode')), 'the probe to subscribe')
        except BaseException:
            self.close()
            raise

    def wait_cameras(self) -> None:
        """Wait until the (active) node subscribes to every camera."""
        wait_until(lambda: all(p.get_subscription_count() > 0 for p in self.cameras.values()),
                   'the node to subscribe to every camera')

    def snapshot(self, kind: str) -> list[Any]:
        return self.probe.snapshot(kind)

    def wait_events(self, *kinds: int, timeout: float = TIMEOUT_S) -> list[EpisodeEvent]:
        return self.probe.wait_events(*kinds, timeout=timeout)

    # -- input --------------------------------------------------------------------------------

    def message(self, role: str, pixels: np.ndarray, stamp_ns: int,
                fmt: str = 'png', encoding: str = 'rgb8', padding: int = 0) -> Any:
        """The message camera ``role`` would send (its transport decides raw or compressed)."""
        if self.transports[role] == 'compressed':
            return convert.rgb_to_compressed(pixels, fmt, stamp_ns=stamp_ns,
                                             frame_id=f'cam_{role}')
        return convert.rgb_to_image(pixels, encoding, stamp_ns=stamp_ns,
                                    frame_id=f'cam_{role}', padding=padding)

    def publish(self, role: str, msg: Any) -> None:
        self.cameras[role].publish(msg)

    def publish_set(self, stamp_ns: int, seed: int,
                    roles: Sequence[str] | None = None) -> dict[str, Any]:
        """Publish one frame per camera (all stamped ``stamp_ns``); returns the messages."""
        msgs = {role: self.message(role, frame(seed * 10 + i), stamp_ns)
                for i, role in enumerate(roles or self.transports)}
        for role, msg in msgs.items():
            self.publish(role, msg)
        return msgs

    # -- waiting ------------------------------------------------------------------------------

    def wait_progress(self, count: int, timeout: float = TIMEOUT_S) -> list[Progress]:
        """Wait until at least ``count`` Progress messages arrived; returns them all."""
        def found() -> list[Progress] | None:
            progress = self.snapshot('progress')
            return progress if len(progress) >= count else None
        return wait_until(found, f'{count} Progress messages', timeout)

    def latest_diagnostics(self) -> DiagnosticArray | None:
        """The last /diagnostics array this node published (None before the first)."""
        for array in reversed(self.snapshot('diagnostics')):
            if any(s.name.startswith(f'{self.ns}/robo_dopamine:') for s in array.status):
                return array
        return None

    def diagnostics(self, suffix: str) -> dict[str, str]:
        """The latest values of this node's status named ``... suffix`` (waits for the first)."""
        array = wait_until(self.latest_diagnostics, 'the first diagnostics')
        return diag_values(array, suffix)

    def wait_diagnostics(self, check: Callable[[DiagnosticArray], bool], what: str,
                         timeout: float = TIMEOUT_S) -> DiagnosticArray:
        """Wait for a /diagnostics array of this node for which ``check`` holds."""
        def found() -> DiagnosticArray | None:
            array = self.latest_diagnostics()
            return array if array is not None and check(array) else None
        return wait_until(found, what, timeout)

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = TIMEOUT_S) -> Any:
        """Call one of the node's services (bounded) and return the response."""
        client = self.probe.node.create_client(srv_type, f'{self.ns}/robo_dopamine/{name}')
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f'service {name} did not appear')
            future = client.call_async(request)
            wait_until(future.done, f'the {name} response', timeout)
            return future.result()
        finally:
            self.probe.node.destroy_client(client)

    # -- teardown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the node (SHUTDOWN) while the graph still spins, then tear everything down."""
        self.node.close()
        self.probe.stop()
        self.node.destroy_node()
        self.probe.close()

    def __enter__(self) -> NodeHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
