"""Benchmark: the reward node's own cost, against a bare subscriber of the same frames.

Question answered (issue 14's goals): does the node cost a robot PC more than receiving its
cameras anyway would? Three cameras publish 640×480 frames at 30 Hz (raw rgb8, or JPEG
``CompressedImage``), all three stamped alike per tick, from a publisher process (its own CPU is
measured apart). Two receivers run AT THE SAME TIME on the same frames: the installed
``reward_node`` with the ``scripted-test-double`` backend (a TEST DOUBLE whose answer costs a
pixel digest, no model) and a bare rclpy subscriber (``SingleThreadedExecutor``) that
deserializes every frame and does nothing else. Measured in one run, per configuration:

* **node CPU / bare subscriber CPU** (goal ≤ 1.0), each from ``/proc`` over the frames' window;
* **samples scored / expected** (goal ≥ 99 %): expected = the sampling slots (``interval``) the
  published frames span (reliable) or that either receiver got a complete set in (best_effort:
  what DDS delivered anyway, see :data:`NOTES`);
* **node overhead per sample** (goal p50 ≤ 5 ms): receipt of ``~/progress`` here − publish of the
  set's last frame − the backend time the node reports (``latency_s``) − that same set's
  transport time to the bare subscriber (its receipt − its publish);
* **RSS flat**: node RSS at the end − at a quarter of the frames' window (goal ≤ 10 MiB).

``--all`` runs raw and compressed × best_effort and reliable and writes one report. All
processes share this machine's cores (printed with the results). Linux only (``/proc``).

The test double keeps its last 64 batches of queries (images included) for tests to inspect:
memory the node itself would not hold. ``--without-double-records`` runs the node (this file as
the node's process, ``ros/main.py``'s ``main``) with a test double that keeps none, so the RSS
figure is the node's. ``--depth`` sets the camera queue depth of both receivers (node
``qos.depth``, the bare subscriber's history), default 5 as the node's.

The camera publisher and the bare subscriber are ``node_overhead_peers.py`` (this file runs them
as child processes); the report is ``node_overhead_report.py``.

Usage: ``. scripts/env.sh && python bench/node_overhead.py --all --without-double-records``
(about 6 min).
Writes ``bench/results/node_overhead.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
import yaml
from ament_index_python.packages import get_package_prefix
from diagnostic_msgs.msg import DiagnosticArray
from node_overhead_peers import NAMESPACE, camera_topic, run_publisher, run_subscriber
from node_overhead_report import document, report
from PIL import Image as PilImage
from proc_stats import NS, cpu_share, proc_sample
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from robo_dopamine_ros.msg import EpisodeEvent, Progress

from robo_dopamine_ros.core.names import CAMERAS, UPSTREAM_CAMERAS

# Counters of the node's /diagnostics that account for every frame and sample.
DIAGNOSTIC_COUNTERS = {'frames', 'bad_frames', 'zero_stamps', 'non_monotonic_stamps',
                       'skewed_stamps', 'stale_sets', 'steps', 'invalid_steps'}
#: The first argument that makes this file the node's process (``--without-double-records``).
NODE_ROLE = '--role=node'
RESULTS = Path(__file__).resolve().parent / 'results' / 'node_overhead.md'


def run_node(ros_args: list[str]) -> int:
    """The reward node with a test double that keeps no record of its queries."""
    from robo_dopamine_ros.backends.scripted import ScriptedBackend
    from robo_dopamine_ros.ros.main import main as node_main

    return node_main(['reward_node', *ros_args],
                     backend_factory=lambda config: ScriptedBackend(keep_batches=0))


def node_command(args: argparse.Namespace, workdir: Path) -> list[str]:
    """The installed reward_node with the benchmark's parameters (as ``ros2 run`` would), or
    this file as the node's process (``--without-double-records``)."""
    goal = workdir / 'goal.png'
    PilImage.new('RGB', (args.width, args.height), (128, 96, 64)).save(goal)
    params = {
        'model.backend': 'scripted-test-double', 'model.device': 'cpu',
        'sampling.interval_s': args.interval, 'qos.reliability': args.reliability,
        'qos.depth': args.depth,
        **{f'cameras.{role}.transport': args.transport for role in CAMERAS},
        'task': 'organize the table', 'goal_image': str(goal),
        **{f'cameras.{role}.topic': camera_topic(camera)
           for role, camera in zip(CAMERAS, UPSTREAM_CAMERAS, strict=True)},
    }
    params_file = workdir / 'params.yaml'
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
    exe = [sys.executable, __file__, NODE_ROLE] if args.without_double_records else [str(
        Path(get_package_prefix('robo_dopamine_ros')) / 'lib' / 'robo_dopamine_ros' /
        'reward_node')]
    return [*exe, '--ros-args', '-r', '__node:=robo_dopamine', '-r', f'__ns:={NAMESPACE}',
            '--params-file', str(params_file)]


@dataclass
class Observer:
    """What this process sees of the node: Progress receipts, readiness, last diagnostics."""

    received: dict[int, tuple[int, float, bool]] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)
    diagnostics: dict[str, str] = field(default_factory=dict)

    def progress(self, msg: Progress) -> None:
        now = time.monotonic_ns()
        stamp = msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        self.received[stamp] = (now, msg.latency_s, msg.valid)

    def episode(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.READY:
            self.ready.set()

    def diagnostic(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            node, _, section = status.name.partition(': ')
            if node == f'{NAMESPACE}/robo_dopamine':
                self.diagnostics.update({f'{section} {kv.key}': kv.value
                                         for kv in status.values if counts_frames(kv.key)})


def counts_frames(key: str) -> bool:
    """The diagnostics keys that account for frames and samples (see ros/diagnostics.py)."""
    return key.startswith(('sync_', 'queue_')) or key in DIAGNOSTIC_COUNTERS


def spawn(role: str, output: Path, args: argparse.Namespace,
          env: dict[str, str]) -> subprocess.Popen[bytes]:
    """This file again, as the publisher or the baseline subscriber process."""
    return subprocess.Popen(
        [sys.executable, __file__, '--role', role, '--role-output', str(output),
         '--seconds', str(args.seconds), '--rate', str(args.rate), '--width', str(args.width),
         '--height', str(args.height), '--reliability', args.reliability,
         '--transport', args.transport, '--depth', str(args.depth),
         '--domain-id', str(args.domain_id)], env=env)


def finished(proc: subprocess.Popen[bytes], output: Path, timeout: float) -> dict[str, Any]:
    """The JSON a child process wrote, once it exited cleanly; kills it past ``timeout``."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode != 0:
        raise RuntimeError(f'{proc.args[3]} process failed with exit code {proc.returncode}')
    return json.loads(output.read_text())


@dataclass
class NodeRun:
    """The node phase: what the observer saw, /proc samples of the node, its idle CPU share."""

    observer: Observer
    samples: list[tuple[int, float, float]]
    idle: float
    publisher: dict[str, Any]
    baseline: dict[str, Any]


def measure_node(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> NodeRun:
    """Start the node, wait for READY, measure it idle, then under the publisher's frames."""
    rclpy.init(domain_id=args.domain_id)
    observer = Observer()
    probe = rclpy.create_node('rdr_bench_observer')
    base = f'{NAMESPACE}/robo_dopamine'
    probe.create_subscription(Progress, f'{base}/progress', observer.progress,
                              QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    probe.create_subscription(EpisodeEvent, f'{base}/episode', observer.episode, QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    probe.create_subscription(DiagnosticArray, '/diagnostics', observer.diagnostic, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    threading.Thread(target=executor.spin, daemon=True).start()
    node_log = workdir / 'node.log'
    with node_log.open('wb') as out:
        node = subprocess.Popen(node_command(args, workdir), env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    samples: list[tuple[int, float, float]] = []
    try:
        if not observer.ready.wait(120.0):
            raise RuntimeError(f'node not ready within 120 s:\n{node_log.read_text()}')
        idle_from = time.monotonic_ns()
        while time.monotonic_ns() - idle_from < 3 * NS:
            samples.append(proc_sample(node.pid))
            time.sleep(0.25)
        idle = cpu_share(samples, idle_from, time.monotonic_ns())
        subscriber = spawn('subscriber', workdir / 'subscriber.json', args, env)
        ready = (workdir / 'subscriber.json').with_suffix('.ready')
        while not ready.exists():
            if subscriber.poll() is not None:
                raise RuntimeError('the bare subscriber failed to start')
            time.sleep(0.1)
        publisher = spawn('publisher', workdir / 'publisher.json', args, env)
        while publisher.poll() is None:
            samples.append(proc_sample(node.pid))
            time.sleep(0.25)
        published = finished(publisher, workdir / 'publisher.json', timeout=60)
        time.sleep(2.0 + 2 * args.interval)   # the last samples and a diagnostics update
        samples.append(proc_sample(node.pid))
        baseline = finished(subscriber, workdir / 'subscriber.json', timeout=60)
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=30)
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown()
    return NodeRun(observer, samples, idle, published, baseline)


CONFIGS = (('raw', 'best_effort'), ('raw', 'reliable'), ('compressed', 'best_effort'),
           ('compressed', 'reliable'))


def main() -> None:
    if sys.argv[1:2] == [NODE_ROLE]:    # this file as the node's process
        raise SystemExit(run_node(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--seconds', type=float, default=60.0, help='seconds of frames')
    parser.add_argument('--rate', type=float, default=30.0, help='frames per second per camera')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--interval', type=float, default=1.0,
                        help="node sampling.interval_s (header time between scored samples; "
                             "the node's default)")
    parser.add_argument('--reliability', choices=('best_effort', 'reliable'),
                        default='best_effort', help='camera QoS, both sides')
    parser.add_argument('--transport', choices=('raw', 'compressed'), default='raw',
                        help='camera messages: raw rgb8 Image or JPEG CompressedImage')
    parser.add_argument('--depth', type=int, default=5,
                        help="camera queue depth of both receivers (the node's qos.depth)")
    parser.add_argument('--without-double-records', action='store_true',
                        help='the test double keeps no record of its queries (RSS = the node)')
    parser.add_argument('--all', action='store_true',
                        help='every transport × reliability (ignores the two options above)')
    parser.add_argument('--domain-id', type=int, default=180 + os.getpid() % 50,
                        help='ROS_DOMAIN_ID of every process (<= 232 with Fast DDS)')
    parser.add_argument('--out', type=Path, default=RESULTS, help='markdown report')
    # Internal: this file as a child process (publisher or baseline subscriber).
    parser.add_argument('--role', choices=('publisher', 'subscriber'), help=argparse.SUPPRESS)
    parser.add_argument('--role-output', type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == 'publisher':
        run_publisher(args)
        return
    if args.role == 'subscriber':
        run_subscriber(args)
        return
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain_id),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    configs = CONFIGS if args.all else ((args.transport, args.reliability),)
    sections, goals = [], []
    for transport, reliability in configs:
        run_args = argparse.Namespace(**{**vars(args), 'transport': transport,
                                         'reliability': reliability})
        with tempfile.TemporaryDirectory(prefix='rdr_bench_') as tmp:
            section, goal = report(run_args, measure_node(run_args, env, Path(tmp)))
        print(section, flush=True)
        sections.append(section)
        goals.append(goal)
    text = document(goals, sections)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == '__main__':
    main()
