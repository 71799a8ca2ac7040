"""Benchmark: a fleet of robots scoring through one served GRM.

Question answered: what does each robot's node cost, and how much latency does the node add on
top of the server, as 1, 2, 4, 8 robots share one OpenAI-compatible server? By default the server
is the scripted loopback server of the tests (test/openai_server.py, a TEST DOUBLE of ``vllm
serve``) answering every request after a fixed latency, so what is measured is the node and the
fleet plumbing, not a model. ``--server vllm --model DIR`` serves a checkpoint with the real
``vllm serve`` of ``.venv-vllm`` instead (test/vllm_serve.py, one server for all fleet sizes):
then the latency is the whole step's, the server's included, and the start-up time is reported.
Each robot is an installed ``reward_node`` process in its own namespace (``model.backend:
openai``) fed by this process with 3 cameras × 5 Hz × 320×240 JPEG
(``CompressedImage``), every set a sample (``sampling.interval_s`` 0.2). Measured in one run per
fleet size:

* **node CPU per robot**: share of one core from ``/proc`` while frames flow (mean over robots);
* **requests per second** at the server;
* **reward latency beyond the server**: receipt of ``~/progress`` here minus the publish time of
  its camera set, minus the server's fixed latency (a step's readings go out concurrently, so a
  step costs one server latency), p50 / p95 over all robots;
* samples published vs scored (what was dropped because the fleet saturated).

Usage: ``. scripts/env.sh && python bench/fleet.py [--robots 1 2 4 8] [--seconds 20]
[--server-latency 0.05] [--server vllm --model DIR]``. Writes ``bench/results/fleet.md`` (with
the test double) or ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from ament_index_python.packages import get_package_prefix
from proc_stats import NS, cpu_share, proc_sample
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from robo_dopamine_ros.msg import Progress
from sensor_msgs.msg import CompressedImage

# The tests' helpers: the scripted server (a test double of vllm serve), the real vllm serve,
# the node command line.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from node_harness import node_command as harness_command
from openai_server import FakeOpenAI, Reply, completion
from vllm_serve import ServedGrm

from robo_dopamine_ros.core.names import CAMERAS
from robo_dopamine_ros.ros import convert
from robo_dopamine_ros.ros.demo import interrupt

RESULTS = Path(__file__).resolve().parent / 'results' / 'fleet.md'
RATE_HZ = 5.0
SIZE = (320, 240)


def node_command(ns: str, model: dict[str, Any]) -> list[str]:
    exe = Path(get_package_prefix('robo_dopamine_ros')) / 'lib' / 'robo_dopamine_ros' / \
        'reward_node'
    params = {'model.backend': 'openai', 'model.openai.timeout_s': 10.0,
              'model.load_retry_s': 0.5, 'engine.missing_goal': 'blank',
              'task': 'put the cup on the plate', 'sampling.interval_s': 0.2,
              'qos.reliability': 'reliable', 'queue.length': 4,
              **{f'cameras.{r}.topic': f'{ns}/{r}/compressed' for r in CAMERAS},
              **{f'cameras.{r}.transport': 'compressed' for r in CAMERAS}, **model}
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


class Server:
    """The server the fleet talks to: the node's model parameters, its fixed latency (0 for a
    real one: the latency reported then includes the server's) and its request counter."""

    def __init__(self, model: dict[str, Any], latency_s: float, served: Callable[[], int],
                 drain_s: float = 2.0) -> None:
        self.model, self.latency_s, self.served = model, latency_s, served
        #: How long the last answers may take to come back after the stream ends.
        self.drain_s = drain_s
        self.start_s = float('nan')


@contextlib.contextmanager
def test_double(args: argparse.Namespace) -> Iterator[Server]:
    """The scripted server: a fixed answer after ``--server-latency``."""
    reply = Reply(200, completion('<score>+5%</score>'), args.server_latency)
    with FakeOpenAI(lambda n, body: reply, record=args.record) as server:
        yield Server({'model.openai.base_url': server.url, 'model.openai.served_model': 'bench'},
                     args.server_latency, lambda: server.served)


def vllm_requests(url: str) -> int:
    """Requests the vLLM server has finished (its Prometheus counter)."""
    with urllib.request.urlopen(url.removesuffix('/v1') + '/metrics', timeout=30) as r:
        return int(sum(float(line.rsplit(' ', 1)[1]) for line in r.read().decode().splitlines()
                       if line.startswith('vllm:request_success_total')))


def run(robots: int, server: Server, args: argparse.Namespace,
        workdir: Path) -> dict[str, Any]:
    """One fleet size: start the robots, stream, measure."""
    env = {**os.environ, 'ROS_DOMAIN_ID': str(args.domain_id),
           'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    procs = [subprocess.Popen(node_command(f'/robot{k}', server.model), env=env,
                              stdout=(workdir / f'robot{k}.log').open('w'),
                              stderr=subprocess.STDOUT) for k in range(robots)]
    fleet = Fleet(robots, args.domain_id)
    try:
        fleet.wait_subscribed()
        time.sleep(1.0)                     # READY and the first warm-up requests settle
        requests0 = server.served()
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
        time.sleep(server.drain_s)          # the last answers come back
        done.set()
        sampler.join()
        requests = server.served() - requests0
    finally:
        for p in procs:
            interrupt(p)
        fleet.close()
    cpu = [cpu_share(samples[p.pid], t0, t1) for p in procs]
    latencies, backend = [], []
    for robot, stamp, rx, latency_s in fleet.received:
        sent = fleet.published.get((robot, stamp))
        if sent is not None and latency_s == latency_s:     # START has no latency (NaN)
            latencies.append((rx - sent) / 1e6 - server.latency_s * 1e3)
            backend.append(latency_s * 1e3 - server.latency_s * 1e3)
    lat = np.asarray(latencies)
    return {'robots': robots, 'cpu': float(np.mean(cpu)), 'cpu_max': float(np.max(cpu)),
            'rps': requests / ((t1 - t0) / NS), 'published': len(fleet.published),
            'scored': len(fleet.received), 'p50': float(np.percentile(lat, 50)),
            'p95': float(np.percentile(lat, 95)),
            'backend_p50': float(np.percentile(backend, 50))}


def report(args: argparse.Namespace, rows: list[dict[str, Any]], server: Server) -> str:
    real = args.server == 'vllm'
    beyond = '(server included)' if real else 'beyond the server'
    described = (f'the real vllm serve (.venv-vllm, test/vllm_serve.py) of {args.model}, '
                 f'ready {server.start_s:.0f} s after its start' if real else
                 f"the tests' scripted OpenAI-compatible server (TEST DOUBLE of vllm serve), "
                 f'{args.server_latency:g} s per request')
    lines = [
        '# Fleet benchmark: N robots, one served GRM', '',
        f'`python bench/fleet.py --robots {" ".join(map(str, args.robots))} --seconds '
        f'{args.seconds:g}{"" if real else f" --server-latency {args.server_latency:g}"}'
        f'{" --record" if args.record else ""}'
        f'{f" --server vllm --model {args.model}" if real else ""}` on {platform.node()} '
        f'({os.cpu_count()} cores, Python {platform.python_version()}, load average '
        f'{os.getloadavg()[0]:.1f} at the end). Server: {described}. Each robot: 3 cameras × '
        f'{RATE_HZ:g} Hz × {SIZE[0]}×{SIZE[1]} JPEG, every set scored (3 readings, concurrent).',
        '',
        '| robots | node CPU per robot (mean / max, % of a core) | requests/s at the server | '
        f'sets published | scored | latency {beyond} p50 / p95 (ms) | '
        f'backend call {beyond} p50 (ms) |',
        '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["robots"]} | {100 * r["cpu"]:.0f} / {100 * r["cpu_max"]:.0f} | '
                     f'{r["rps"]:.1f} | {r["published"]} | {r["scored"]} | '
                     f'{r["p50"]:.1f} / {r["p95"]:.1f} | {r["backend_p50"]:.1f} |')
    if not real:
        lines += ['', 'Latency beyond the server = receipt of ~/progress here − publish time of '
                  'its camera set − the server latency; it includes DDS delivery both ways, JPEG '
                  'decoding and resizing, encoding the new views into data URLs (the others '
                  "come from the backend's cache), HTTP over kept-alive connections and the test "
                  "server's own request handling (with --record, its JSON parsing too). Goal: "
                  '≤ 5 ms p50 at 4 robots.']
    return '\n'.join([*lines, ''])


@contextlib.contextmanager
def serving(args: argparse.Namespace, workdir: Path) -> Iterator[Server]:
    """The server of ``--server``: the test double, or ``vllm serve`` of ``--model``."""
    if args.server == 'double':
        with test_double(args) as server:
            yield server
        return
    root = Path(__file__).resolve().parents[1]
    served = ServedGrm.start(root / '.venv-vllm' / 'bin' / 'python', root, Path(args.model),
                             workdir / 'vllm-serve.log')
    try:
        server = Server({**served.node_params(), 'model.openai.timeout_s': 60.0}, 0.0,
                        lambda: vllm_requests(served.server.url), drain_s=15.0)
        server.start_s = served.server.start_s
        yield server
    finally:
        served.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--robots', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--server-latency', type=float, default=0.05)
    parser.add_argument('--domain-id', type=int, default=77)
    parser.add_argument('--record', action='store_true',
                        help='the test server parses and keeps every request (as in the tests; '
                             'its JSON parsing then counts as latency beyond the server)')
    parser.add_argument('--server', choices=('double', 'vllm'), default='double',
                        help="the tests' scripted server, or the real vllm serve of --model")
    parser.add_argument('--model', help='--server vllm: the checkpoint directory to serve')
    parser.add_argument('--out', type=Path, help=f'the report file (default with the test '
                        f'double: {RESULTS.relative_to(RESULTS.parents[2])}; else printed only)')
    args = parser.parse_args()
    if args.server == 'vllm' and not args.model:
        parser.error('--server vllm needs --model')
    rows = []
    with tempfile.TemporaryDirectory() as tmp, serving(args, Path(tmp)) as server:
        for robots in args.robots:
            rows.append(run(robots, server, args, Path(tmp)))
            print(rows[-1], flush=True)
    text = report(args, rows, server)
    out = args.out or (RESULTS if args.server == 'double' else None)
    if out is not None:
        out.write_text(text)
    print(text)


if __name__ == '__main__':
    main()
