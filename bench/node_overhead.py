"""Benchmark: the reward node's own cost per sample, with a zero-cost model stand-in.

Question answered: what does the node add on top of the model? Three cameras publish 640×480
rgb8 frames at 30 Hz, header-stamped together, from a separate publisher process (whose own CPU
is measured apart). The installed ``reward_node`` runs as a third process with the
``scripted-test-double`` backend (a TEST DOUBLE whose answer costs a pixel digest, no model) and
a short sampling interval, so many samples are scored. Measured in one run:

* **overhead per sample**: receipt of a ``~/progress`` message here minus the publish time of the
  last camera frame of its sample (matched by header stamp), minus the backend time the node
  reports (``latency_s``). It covers frame delivery to the node, synchronisation, sampling, image
  conversion and resizing, query building, message building, publishing and delivery back;
* the node's CPU share (of one core) and RSS from ``/proc`` while frames flow, and idle before;
* frames published vs what the node reports in ``/diagnostics`` (received, synchronized sets,
  drops) vs samples scored;
* a baseline under the same load: a bare rclpy subscriber (``SingleThreadedExecutor``, trivial
  callbacks) to the three cameras, so delay, frame losses and CPU can be split into what
  receiving large images over DDS costs anyway and what the node adds.

All processes share this machine's cores (printed with the results): on a small machine
the publisher's own load slows the node too. Linux only (``/proc``).

Usage: ``. scripts/env.sh && python bench/node_overhead.py [--seconds 60] [--interval 0.1]``.
Writes ``bench/results/node_overhead.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from ament_index_python.packages import get_package_prefix
from diagnostic_msgs.msg import DiagnosticArray
from PIL import Image as PilImage
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from robo_dopamine_ros.msg import EpisodeEvent, Progress
from sensor_msgs.msg import Image

NAMESPACE = '/rdr_bench'
CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
ROLES = ('front', 'left', 'right')
PAGE = os.sysconf('SC_PAGE_SIZE')
TICKS = os.sysconf('SC_CLK_TCK')
NS = 1_000_000_000
# Counters of the node's /diagnostics that account for every frame and sample.
DIAGNOSTIC_COUNTERS = {'frames', 'bad_frames', 'zero_stamps', 'non_monotonic_stamps',
                       'skewed_stamps', 'stale_sets', 'steps', 'invalid_steps'}
RESULTS = Path(__file__).resolve().parent / 'results' / 'node_overhead.md'


def camera_topic(camera: str) -> str:
    return f'{NAMESPACE}/{camera}/image_raw'


def qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE
                      if reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT)


# --- publisher process -------------------------------------------------------------------------

def run_publisher(args: argparse.Namespace) -> None:
    """Publish synchronized frame sets at ``args.rate`` for ``args.seconds``; write timings.

    One pre-built message per camera, restamped each tick with a frame counter written into
    its first pixels (so no two frames are equal): the publisher's cost is serialisation and
    transport, as for a camera driver, not image generation.
    """
    rclpy.init(domain_id=args.domain_id)
    node = rclpy.create_node('rdr_bench_cameras')
    rng = np.random.default_rng(0)
    messages, publishers = [], []
    for camera in CAMERAS:
        msg = Image(height=args.height, width=args.width, encoding='rgb8', step=args.width * 3)
        msg.header.frame_id = camera
        msg.data = rng.integers(0, 256, args.height * args.width * 3, dtype=np.uint8).tobytes()
        messages.append(msg)
        publishers.append(node.create_publisher(Image, camera_topic(camera),
                                                qos(args.reliability, 5)))
    deadline = time.monotonic() + 60.0
    while any(p.get_subscription_count() < 1 for p in publishers):
        if time.monotonic() > deadline:
            raise TimeoutError('the node did not subscribe to the cameras within 60 s')
        time.sleep(0.05)
    period_ns = round(NS / args.rate)
    ticks = round(args.seconds * args.rate)
    last_publish: list[tuple[int, int]] = []
    late = 0
    cpu0 = time.process_time()
    start = time.monotonic_ns() + period_ns
    for i in range(ticks):
        due = start + i * period_ns
        wait = due - time.monotonic_ns()
        if wait > 0:
            time.sleep(wait / NS)
        elif wait < -period_ns:
            late += 1
        stamp = node.get_clock().now().to_msg()
        for msg, pub in zip(messages, publishers, strict=True):
            msg.header.stamp = stamp
            msg.data[:8] = array('B', i.to_bytes(8, 'little'))
            pub.publish(msg)
        last_publish.append((stamp.sec * NS + stamp.nanosec, time.monotonic_ns()))
    cpu_s = time.process_time() - cpu0
    wall_s = (time.monotonic_ns() - start) / NS
    args.role_output.write_text(json.dumps({
        'frames_per_camera': ticks, 'late_ticks': late, 'cpu_s': cpu_s, 'wall_s': wall_s,
        'max_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        'last_publish': last_publish,
    }))
    node.destroy_node()
    rclpy.try_shutdown()


# --- baseline subscriber process ---------------------------------------------------------------

def run_subscriber(args: argparse.Namespace) -> None:
    """Receive the three cameras with trivial callbacks; write counts, arrivals and CPU share.

    Per frame set it keeps how many cameras arrived and when the last one did, so the
    transport's own delay can be set beside the node's. It stops 2 s after the last frame; CPU
    is measured from the first frame to the last, the same window as the node's.
    """
    rclpy.init(domain_id=args.domain_id)
    node = rclpy.create_node('rdr_bench_baseline')
    counts = [0] * len(CAMERAS)
    arrivals: dict[int, list[int]] = {}           # stamp -> [cameras arrived, last arrival ns]
    window: dict[str, tuple[float, float]] = {}   # first/last frame: (monotonic, process CPU)

    def frame(index: int, msg: Image) -> None:
        counts[index] += 1
        arrival = arrivals.setdefault(msg.header.stamp.sec * NS + msg.header.stamp.nanosec, [0, 0])
        arrival[0] += 1
        arrival[1] = time.monotonic_ns()
        window.setdefault('first', (time.monotonic(), time.process_time()))
        window['last'] = (time.monotonic(), time.process_time())

    for index, camera in enumerate(CAMERAS):
        node.create_subscription(Image, camera_topic(camera),
                                 lambda msg, i=index: frame(i, msg), qos(args.reliability, 5))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + args.seconds + 120.0
    # Done once the frames have started and then stopped for 2 s.
    while 'last' not in window or time.monotonic() - window['last'][0] < 2.0:
        if time.monotonic() > deadline:
            raise TimeoutError('the baseline subscriber saw no end of the frames')
        executor.spin_once(timeout_sec=0.1)
    (t0, c0), (t1, c1) = window['first'], window['last']
    args.role_output.write_text(json.dumps({
        'frames': counts, 'cpu_share': (c1 - c0) / (t1 - t0),
        'complete_sets': [(stamp, t) for stamp, (n, t) in arrivals.items() if n == len(CAMERAS)],
    }))
    node.destroy_node()
    rclpy.try_shutdown()


# --- node process ------------------------------------------------------------------------------

def proc_sample(pid: int) -> tuple[int, float, float]:
    """(monotonic ns, CPU seconds so far, RSS MiB) of a process, from /proc."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS    # utime + stime
    rss_mb = int(fields[21]) * PAGE / 2**20
    return time.monotonic_ns(), cpu_s, rss_mb


def cpu_share(samples: list[tuple[int, float, float]], t0: int, t1: int) -> float:
    """CPU seconds per wall second (1.0 = one full core) between the samples nearest t0, t1."""
    inside = [s for s in samples if t0 <= s[0] <= t1]
    if len(inside) < 2:
        raise RuntimeError('too few /proc samples in the measured window')
    (a, ca, _), (b, cb, _) = inside[0], inside[-1]
    return (cb - ca) / ((b - a) / NS)


def node_command(args: argparse.Namespace, workdir: Path) -> list[str]:
    """The installed reward_node with the benchmark's parameters (as ``ros2 run`` would)."""
    goal = workdir / 'goal.png'
    PilImage.new('RGB', (args.width, args.height), (128, 96, 64)).save(goal)
    params = {
        'model.backend': 'scripted-test-double', 'model.device': 'cpu',
        'sampling.interval_s': args.interval, 'qos.reliability': args.reliability,
        'task': 'organize the table', 'goal_image': str(goal),
        **{f'cameras.{role}.topic': camera_topic(camera)
           for role, camera in zip(ROLES, CAMERAS, strict=True)},
    }
    params_file = workdir / 'params.yaml'
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
    exe = Path(get_package_prefix('robo_dopamine_ros')) / 'lib' / 'robo_dopamine_ros' / \
        'reward_node'
    return [str(exe), '--ros-args', '-r', '__node:=robo_dopamine', '-r', f'__ns:={NAMESPACE}',
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


def percentiles(values: np.ndarray) -> str:
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f'p50 {p50:.2f} / p90 {p90:.2f} / p99 {p99:.2f} / max {values.max():.2f}'


def spawn(role: str, output: Path, args: argparse.Namespace,
          env: dict[str, str]) -> subprocess.Popen[bytes]:
    """This file again, as the publisher or the baseline subscriber process."""
    return subprocess.Popen(
        [sys.executable, __file__, '--role', role, '--role-output', str(output),
         '--seconds', str(args.seconds), '--rate', str(args.rate), '--width', str(args.width),
         '--height', str(args.height), '--reliability', args.reliability,
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
        publisher = spawn('publisher', workdir / 'publisher.json', args, env)
        while publisher.poll() is None:
            samples.append(proc_sample(node.pid))
            time.sleep(0.25)
        published = finished(publisher, workdir / 'publisher.json', timeout=60)
        time.sleep(2.0 + 2 * args.interval)   # the last samples and a diagnostics update
        samples.append(proc_sample(node.pid))
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=30)
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown()
    return NodeRun(observer, samples, idle, published)


def measure_baseline(args: argparse.Namespace, env: dict[str, str],
                     workdir: Path) -> dict[str, Any]:
    """The same frames into a bare subscriber process instead of the node.

    Adds ``delays_ms``: per complete frame set, the arrival of its last frame minus the publish
    of its last frame — what DDS alone takes, before any work of the node.
    """
    limit = args.seconds + 120.0
    subscriber = spawn('subscriber', workdir / 'subscriber.json', args, env)
    try:
        published = finished(spawn('publisher', workdir / 'baseline_publisher.json', args, env),
                             workdir / 'baseline_publisher.json', limit)
        received = finished(subscriber, workdir / 'subscriber.json', limit)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
    sent = dict(published['last_publish'])
    received['delays_ms'] = [(t - sent[stamp]) / 1e6 for stamp, t in received['complete_sets']
                             if stamp in sent]
    return received


def report(args: argparse.Namespace, run: NodeRun, baseline: dict[str, Any]) -> str:
    """Join publish times and receipts by stamp; format the table."""
    pub, observer = run.publisher, run.observer
    sent = dict(pub['last_publish'])
    first, last = pub['last_publish'][0][1], pub['last_publish'][-1][1]
    matched = [(observer.received[s][0] - t, observer.received[s][1])
               for s, t in sent.items() if s in observer.received]
    if not matched:
        raise RuntimeError('no Progress message matched a published frame set')
    total_ms = np.array([m[0] / 1e6 for m in matched])
    backend_ms = np.array([m[1] * 1e3 for m in matched])
    overhead_ms = total_ms - backend_ms
    busy = cpu_share(run.samples, first, last)
    rss = [s[2] for s in run.samples]
    growth = (rss[-1] - rss[0]) / max(len(observer.received), 1)
    expected = (last - first) / NS / args.interval
    valid = sum(1 for v in observer.received.values() if v[2])
    frames = pub['frames_per_camera']
    node_frames = [observer.diagnostics.get(f'camera {role} frames', '?') for role in ROLES]
    lines = [
        '# Reward node overhead per sample (zero-cost scripted test double)', '',
        f'Command: `{" ".join(["python bench/node_overhead.py", *sys.argv[1:]])}` '
        '(after `. scripts/env.sh`)', '',
        f'Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), '
        f'Python {platform.python_version()}, {time.strftime("%Y-%m-%d")}. '
        f'3 cameras × {args.rate:g} Hz × {args.width}×{args.height} rgb8, {args.reliability}, '
        f'sampling every {args.interval:g} s of header time, {pub["wall_s"]:.0f} s of frames.',
        '', '| measure | value |', '|---|---|',
        '| overhead per sample, ms (receipt − last frame − backend) | '
        f'{percentiles(overhead_ms)} |',
        f'| mean overhead per sample, ms | {overhead_ms.mean():.2f} |',
        f'| backend time (test double), ms | {percentiles(backend_ms)} |',
        '| transport alone: last frame of a set to a bare subscriber, ms | '
        f'{percentiles(np.array(baseline["delays_ms"]))} |',
        f'| samples scored / expected (interval) | {len(observer.received)} / {expected:.0f} '
        f'({valid} valid; {len(matched)} matched to a frame set) |',
        f'| frames published per camera | {frames} ({pub["late_ticks"]} ticks more than a '
        'period late) |',
        f'| frames received (front / left / right): node | {" / ".join(node_frames)} |',
        '| frames received (front / left / right): bare subscriber | '
        f'{" / ".join(str(n) for n in baseline["frames"])} |',
        f'| node CPU while frames flow, % of one core | {busy * 100:.1f} |',
        f'| bare subscriber CPU, same frames, % of one core | {baseline["cpu_share"] * 100:.1f} |',
        f'| node CPU idle (ready, no frames), % of one core | {run.idle * 100:.1f} |',
        f'| node RSS, MiB (start / max / end) | {rss[0]:.0f} / {max(rss):.0f} / {rss[-1]:.0f} |',
        f'| node RSS growth per scored sample, MiB | {growth:.2f} |',
        f'| publisher CPU (measured apart), % of one core | '
        f'{pub["cpu_s"] / pub["wall_s"] * 100:.1f} |',
        f'| publisher max RSS, MiB | {pub["max_rss_mb"]:.0f} |',
    ]
    lines += [f'| node diagnostics: {key} | {value} |'
              for key, value in sorted(observer.diagnostics.items())]
    lines += [
        '', "Overhead includes the synchronizer's wait when a camera's frame of a set was lost "
        "(it waits until every camera delivered a frame `sync.slop_s` past the set, later "
        "still when those frames are lost too) and frames queued in front of the node's "
        "executor. RSS includes the scripted test "
        "double's record of every batch it was given (`ScriptedBackend.batches`, kept for "
        "tests: about 3 resized views per step), so its growth per sample is the double's, "
        "not the node's."]
    return '\n'.join(lines) + '\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--seconds', type=float, default=60.0,
                        help='seconds of frames, for the node and again for the baseline')
    parser.add_argument('--rate', type=float, default=30.0, help='frames per second per camera')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--interval', type=float, default=0.1,
                        help='node sampling.interval_s (header time between scored samples)')
    parser.add_argument('--reliability', choices=('best_effort', 'reliable'),
                        default='best_effort', help='camera QoS, both sides')
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
    with tempfile.TemporaryDirectory(prefix='rdr_bench_') as tmp:
        node_run = measure_node(args, env, Path(tmp))
        baseline = measure_baseline(args, env, Path(tmp))
    text = report(args, node_run, baseline)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == '__main__':
    main()
