"""The node benchmark's other processes: the camera publisher and the bare subscriber.

``node_overhead.py`` starts itself again with ``--role publisher`` or ``--role subscriber`` to run
one of these; each writes its timings as JSON to ``--role-output``. The bare subscriber receives
the same frames as the node at the same time, so its CPU is the yardstick of the node's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from array import array

import numpy as np
import rclpy
from proc_stats import NS
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from robo_dopamine_ros.core.names import UPSTREAM_CAMERAS

NAMESPACE = '/rdr_bench'
#: Processes subscribed to the cameras: the node and the bare subscriber.
RECEIVERS = 2
#: Distinct JPEG frames per camera the publisher cycles through (compressed transport).
JPEG_VARIANTS = 30


def camera_topic(camera: str) -> str:
    return f'{NAMESPACE}/{camera}/image_raw'


def qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE
                      if reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT)


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
    for camera in UPSTREAM_CAMERAS:
        if args.transport == 'compressed':
            messages.append(jpeg_frames(rng, args, camera))
        else:
            msg = Image(height=args.height, width=args.width, encoding='rgb8',
                        step=args.width * 3)
            msg.header.frame_id = camera
            msg.data = rng.integers(0, 256, args.height * args.width * 3,
                                    dtype=np.uint8).tobytes()
            messages.append([msg])
        publishers.append(node.create_publisher(message_type(args), camera_topic(camera),
                                                qos(args.reliability, 5)))
    deadline = time.monotonic() + 60.0
    while any(p.get_subscription_count() < RECEIVERS for p in publishers):
        if time.monotonic() > deadline:
            raise TimeoutError('the node and the bare subscriber did not subscribe to the '
                               'cameras within 60 s')
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
        for variants, pub in zip(messages, publishers, strict=True):
            msg = variants[i % len(variants)]
            msg.header.stamp = stamp
            if isinstance(msg, Image):
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


def message_type(args: argparse.Namespace) -> type:
    return CompressedImage if args.transport == 'compressed' else Image


def jpeg_frames(rng: np.random.Generator, args: argparse.Namespace,
                camera: str) -> list[CompressedImage]:
    """Camera-like JPEGs (a gradient, texture and a moving block), encoded once."""
    import cv2

    h, w = args.height, args.width
    xs, ys = np.meshgrid(np.linspace(0, 200, w), np.linspace(0, 150, h))
    base = np.stack([xs, ys, np.full((h, w), 90.0)], axis=2)
    base += rng.normal(0, 12, (h, w, 3))
    out = []
    for k in range(JPEG_VARIANTS):
        img = base.copy()
        x = (k * w // JPEG_VARIANTS) % (w - 80)
        img[h // 3:h // 3 + 80, x:x + 80] = (220, 40, 40)
        ok, buf = cv2.imencode('.jpg', np.clip(img, 0, 255).astype(np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        msg = CompressedImage(format='rgb8; jpeg compressed bgr8', data=buf.tobytes())
        msg.header.frame_id = camera
        out.append(msg)
    return out


def run_subscriber(args: argparse.Namespace) -> None:
    """Receive (deserialize) the three cameras with trivial callbacks; write counts, arrivals
    and CPU share.

    Per frame set it keeps how many cameras arrived and when the last one did: that set's
    transport time, subtracted from the node's. It stops 2 s after the last frame; CPU is
    measured from the first frame to the last.
    """
    rclpy.init(domain_id=args.domain_id)
    node = rclpy.create_node('rdr_bench_baseline')
    counts = [0] * len(UPSTREAM_CAMERAS)
    arrivals: dict[int, list[int]] = {}           # stamp -> [cameras arrived, last arrival ns]
    window: dict[str, tuple[float, float]] = {}   # first/last frame: (monotonic, process CPU)

    def frame(index: int, msg: Image | CompressedImage) -> None:
        counts[index] += 1
        arrival = arrivals.setdefault(msg.header.stamp.sec * NS + msg.header.stamp.nanosec, [0, 0])
        arrival[0] += 1
        arrival[1] = time.monotonic_ns()
        window.setdefault('first', (time.monotonic(), time.process_time()))
        window['last'] = (time.monotonic(), time.process_time())

    for index, camera in enumerate(UPSTREAM_CAMERAS):
        node.create_subscription(message_type(args), camera_topic(camera),
                                 lambda msg, i=index: frame(i, msg),
                                 qos(args.reliability, args.depth))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + args.seconds + 120.0
    # Done once the frames have started and then stopped for 2 s.
    args.role_output.with_suffix('.ready').touch()
    while 'last' not in window or time.monotonic() - window['last'][0] < 2.0:
        if time.monotonic() > deadline:
            raise TimeoutError('the baseline subscriber saw no end of the frames')
        executor.spin_once(timeout_sec=0.1)
    (t0, c0), (t1, c1) = window['first'], window['last']
    args.role_output.write_text(json.dumps({
        'frames': counts, 'cpu_share': (c1 - c0) / (t1 - t0), 'pid': os.getpid(),
        'complete_sets': [(stamp, t) for stamp, (n, t) in arrivals.items()
                          if n == len(UPSTREAM_CAMERAS)],
    }))
    node.destroy_node()
    rclpy.try_shutdown()
