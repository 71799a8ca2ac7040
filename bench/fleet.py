"""Benchmark: a fleet of robots scoring through one served GRM.

Question answered: what does each robot's node cost, and how much latency does the node add on
top of the server, as 1, 2, 4, 8 robots share one OpenAI-compatible server? The server is the
scripted loopback server of the tests (test/openai_server.py, a TEST DOUBLE of ``vllm serve``)
answering every request after a fixed latency, so what is measured is the node and the fleet
plumbing, not a model. Each robot is an installed ``reward_node`` process in its own namespace
(``model.backend: openai``) fed by this process with 3 cameras × 5 Hz × 320×240 JPEG
(``CompressedImage``), every set a sample (``sampling.interval_s`` 0.2). Measured in one run per
fleet size:

* **node CPU per robot**: share of one core from ``/proc`` while frames flow (mean over robots);
* **requests per second** at the server;
* **reward latency beyond the server**: receipt of ``~/progress`` here minus the publish time of
  its camera set, minus the server's fixed latency (a step's readings go out concurrently, so a
  step costs one server latency), p50 / p95 over all robots;
* samples published vs scored (what was dropped because the fleet saturated).

Usage: ``. scripts/env.sh && python bench/fleet.py [--robots 1 2 4 8] [--seconds 20]
[--server-latency 0.05]``. Writes ``bench/results/fleet.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from ament_index_python.packages import get_package_prefix
from node_overhead import cpu_share, proc_sample
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from robo_dopamine_ros.msg import Progress
from sensor_msgs.msg import CompressedImage

# The tests' helpers: the scripted server (a test double of vllm serve), the node command line.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from node_harness import node_command as harness_command
from openai_server import FakeOpenAI, Reply, completion

from robo_dopamine_ros.core.names import CAMERAS
from robo_dopamine_ros.ros import convert
from robo_dopamine_ros.ros.demo import interrupt

NS = 1_000_000_000
RESULTS = Path(__file__).resolve().parent / 'results' / 'fleet.md'
RATE_HZ = 5.0
SIZE = (320, 240)


def node_command(ns: str, url: str) -> list[str]:
    exe = Path(get_package_prefix('robo_dopamine_ros')) / 'lib' / 'robo_dopamine_ros' / \
        'reward_node'
    params = {'model.backend': 'openai', 'model.openai.base_url': url,
              'model.openai.served_model': 'bench', 'model.openai.timeout_s': 10.0,
              'model.load_retry_s': 0.5, 'engine.missing_goal': 'blank',
              'task': 'put the cup on the plate', 'sampling.interval_s': 0.2,
              'qos.reliability': 'reliable', 'queue.length': 4,
              **{f'cameras.{r}.topic': f'{ns}/{r}/compressed' for r in CAMERAS},
              **{f'cameras.{r}.transport': 'compressed' for r in CAMERAS}}
    return [*harness_command(exe, ns, params), '--log-level', 'warn']


class Fleet:
    """This process's side: the cameras of every robot and a subscriber to their progress."""

    def __init__(self, robots: int, domain_id: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('rdr_bench_fleet', context=self.context)
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        rng = np.random.default_rng(0)
        self.frames = {role: convert.rgb_to_compressed(
            rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8), 'jpeg')
            for role in CAMERAS}
        self.cameras = [{role: self.node.create_publisher(
            CompressedImage, f'/robot{k}/{role}/compressed', reliable) for role in CAMERAS}
            for k in range(robots)]
        self.published: dict[tuple[int, int], int] = {}     # (robot, stamp) -> monotonic ns
        self.received: list[tuple[int, int, int, float]] = []   # robot, stamp, rx, latency_s
        self.lock = threading.Lock()
        for k in range(robots):
            self.node.create_subscription(
                Progress, f'/robot{k}/robo_dopamine/progress',
                lambda msg, k=k: self._progress(k, msg), reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _progress(self, robot: int, msg: Progress) -> None:
        stamp = msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        with self.lock:
            self.received.append((robot, stamp, time.monotonic_ns(), msg.latency_s))

    def wait_subscribed(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while any(p.get_subscription_count() < 1 for cams in self.cameras for p in cams.values()):
            if time.monotonic() > deadline:
                raise TimeoutError('the robots did not subscribe to their cameras')
            time.sleep(0.1)

    def stream(self, seconds: float) -> None:
        period = 1.0 / RATE_HZ
        start = time.monotonic() + period
        for i in range(round(seconds * RATE_HZ)):
            time.sleep(max(0.0, start + i * period - time.monotonic()))
            stamp = self.node.get_clock().now().to_msg()
            stamp_ns = stamp.sec * NS + stamp.nanosec
            for k, cams in enumerate(self.cameras):
                for role, pub in cams.items():
                    msg = self.frames[role]
                    msg.header.stamp = stamp
                    pub.publish(msg)
                with self.lock:
                    self.published[(k, stamp_ns)] = time.monotonic_ns()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self.thread.join(timeout=5)


def run(robots: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One fleet size: start the server and the robots, stream, measure."""
    reply = Reply(200, completion('<score>+5%</score>'), args.server_latency)
    env = {**os.environ, 'ROS_DOMAIN_ID': str(args.domain_id),
           'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    with FakeOpenAI(lambda n, body: reply, record=args.record) as server:
        procs = [subprocess.Popen(node_command(f'/robot{k}', server.url), env=env,
                                  stdout=(workdir / f'robot{k}.log').open('w'),
                                  stderr=subprocess.STDOUT) for k in range(robots)]
        fleet = Fleet(robots, args.domain_id)
        try:
            fleet.wait_subscribed()
            time.sleep(1.0)                     # READY and the first warm-up requests settle
            requests0 = server.served
            samples: dict[int, list[tuple[int, float, float]]] = {p.pid: [] for p in procs}
            done = threading.Event()

            def sample_cpu() -> None:
                while not done.wait(0.5):
                    for p in procs:
                        samples[p.pid].append(proc_sample(p.pid))

            sampler = threading.Thread(target=sample_cpu, daemon=True)
            sampler.start()
            t0 = time.monotonic_ns()
            fleet.stream(args.seconds)
            t1 = time.monotonic_ns()
            time.sleep(2.0)                     # the last answers come back
            done.set()
            sampler.join()
            requests = server.served - requests0
        finally:
            for p in procs:
                interrupt(p)
            fleet.close()
    cpu = [cpu_share(samples[p.pid], t0, t1) for p in procs]
    latencies, backend = [], []
    for robot, stamp, rx, latency_s in fleet.received:
        sent = fleet.published.get((robot, stamp))
        if sent is not None and latency_s == latency_s:     # START has no latency (NaN)
            latencies.append((rx - sent) / 1e6 - args.server_latency * 1e3)
            backend.append(latency_s * 1e3 - args.server_latency * 1e3)
    lat = np.asarray(latencies)
    return {'robots': robots, 'cpu': float(np.mean(cpu)), 'cpu_max': float(np.max(cpu)),
            'rps': requests / ((t1 - t0) / NS), 'published': len(fleet.published),
            'scored': len(fleet.received), 'p50': float(np.percentile(lat, 50)),
            'p95': float(np.percentile(lat, 95)),
            'backend_p50': float(np.percentile(backend, 50))}


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    lines = [
        '# Fleet benchmark: N robots, one served GRM', '',
        f'`python bench/fleet.py --robots {" ".join(map(str, args.robots))} --seconds '
        f'{args.seconds:g} --server-latency {args.server_latency:g}'
        f'{" --record" if args.record else ""}` on {platform.node()} '
        f'({os.cpu_count()} cores, Python {platform.python_version()}). Server: the tests\' '
        f'scripted OpenAI-compatible server (TEST DOUBLE of vllm serve), {args.server_latency:g} '
        f's per request. Each robot: 3 cameras × {RATE_HZ:g} Hz × {SIZE[0]}×{SIZE[1]} JPEG, '
        'every set scored (3 readings, concurrent).', '',
        '| robots | node CPU per robot (mean / max, % of a core) | requests/s at the server | '
        'sets published | scored | latency beyond the server p50 / p95 (ms) | '
        'backend call beyond the server p50 (ms) |',
        '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["robots"]} | {100 * r["cpu"]:.0f} / {100 * r["cpu_max"]:.0f} | '
                     f'{r["rps"]:.1f} | {r["published"]} | {r["scored"]} | '
                     f'{r["p50"]:.1f} / {r["p95"]:.1f} | {r["backend_p50"]:.1f} |')
    lines += ['', 'Latency beyond the server = receipt of ~/progress here − publish time of its '
              'camera set − the server latency; it includes DDS delivery both ways, JPEG '
              'decoding and resizing, encoding the new views into data URLs (the others come '
              "from the backend's cache), HTTP over kept-alive connections and the test "
              "server's own request handling (with --record, its JSON parsing too). Goal: "
              '≤ 5 ms p50 at 4 robots.', '']
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--robots', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--server-latency', type=float, default=0.05)
    parser.add_argument('--domain-id', type=int, default=77)
    parser.add_argument('--record', action='store_true',
                        help='the test server parses and keeps every request (as in the tests; '
                             'its JSON parsing then counts as latency beyond the server)')
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for robots in args.robots:
            rows.append(run(robots, args, Path(tmp)))
            print(rows[-1], flush=True)
    text = report(args, rows)
    RESULTS.write_text(text)
    print(text)


if __name__ == '__main__':
    main()
