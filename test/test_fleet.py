"""A fleet: three reward-node processes (namespaces robot0..2) score through one served GRM.

The server is test/grm_server.py, a loopback stand-in for ``vllm serve`` that answers with the
committed demo GRM through the transformers backend (PNG images, lossless). Each robot plays its
own held-out synthetic episode over real DDS. Checked: every robot's readings are the answers the
same backend gives in-process for the same frames; at least 80 % of the steps are valid; while
the server is down the steps are flagged invalid, and scoring resumes when it is back, without
restarting any node.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from grm_server import GrmServer
from node_harness import Probe, start_node, wait_until
from PIL import Image as PILImage
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from robo_dopamine_ros.core.engine import EpisodeEngine, Sample
from robo_dopamine_ros.pipeline.params import NodeConfig
from robo_dopamine_ros.pipeline.worker import EventKind
from robo_dopamine_ros.ros import convert
from robo_dopamine_ros.ros.demo import interrupt
from robo_dopamine_ros.ros.messages import time_to_ns
from robo_dopamine_ros.synthetic.episode import render_episode
from robo_dopamine_ros.synthetic.spec import EpisodeSpec, Outcome, SyntheticEpisode

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROBOTS = 3
MS = 1_000_000
FRAME_NS = 100 * MS
INTERVAL_S = 0.5
ROLES = ('front', 'left', 'right')
CAMERAS = {'front': 'cam_high', 'left': 'cam_left_wrist', 'right': 'cam_right_wrist'}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def demo_backend(repo_root: Path) -> Iterator[Any]:
    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig
    from robo_dopamine_ros.core.profiles import DEMO_GRM

    model = repo_root / 'robo_dopamine_ros' / 'models' / 'demo_grm'
    backend = TransformersBackend(TransformersConfig(
        model=str(model), device='cpu', pixel_limits=DEMO_GRM.pixel_limits))
    yield backend
    backend.close()


def robot_params(ns: str, model: Path, goal: Path, task: str, url: str) -> dict[str, Any]:
    return {
        'model.backend': 'openai', 'model.path': str(model), 'model.device': 'cpu',
        'model.openai.base_url': url, 'model.openai.served_model': 'demo-grm',
        'model.openai.image_format': 'png', 'model.openai.timeout_s': 30.0,
        'model.openai.max_retries': 1, 'model.load_retry_s': 1.0,
        'qos.reliability': 'reliable', 'qos.depth': 100,
        'sync.queue_size': 100, 'queue.length': 100, 'diagnostics.stale_after_s': 60.0,
        'sampling.interval_s': INTERVAL_S, 'task': task, 'goal_image': str(goal),
        **{f'cameras.{role}.topic': f'{ns}/{CAMERAS[role]}' for role in ROLES}}


class Robot:
    """One robot: its node process, its episode, its cameras and a probe on its outputs."""

    def __init__(self, index: int, reward_node: Path, model: Path, tmp: Path, url: str) -> None:
        self.ns = f'/robot{index}'
        self.dir = tmp / f'robot{index}'
        self.dir.mkdir()
        self.episode: SyntheticEpisode = render_episode(EpisodeSpec(
            seed=900 + index, num_frames=36, fps=10.0, size=(160, 120),
            outcome=Outcome.SUCCESS))
        goal = self.dir / 'goal.png'
        PILImage.fromarray(self.episode.goal).save(goal)
        self.params = robot_params(self.ns, model, goal, self.episode.task, url)
        self.probe = Probe(self.ns)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.cameras = {role: self.probe.node.create_publisher(
            Image, f'{self.ns}/{CAMERAS[role]}', qos) for role in ROLES}
        self.probe.start()
        self.proc = start_node(reward_node, self.dir, self.ns, self.params)
        self.t0 = time.time_ns() // MS * MS
        self.sent: dict[int, dict[str, Any]] = {}

    def publish(self, frames: range, offset: int = 0) -> None:
        """Publish frames ``frames`` of the episode, stamped ``offset`` frames later."""
        for i in frames:
            stamp = self.t0 + (i + offset) * FRAME_NS
            views = {role: self.episode.frames[role][i] for role in ROLES}
            self.sent[stamp] = views
            for role, pixels in views.items():
                self.cameras[role].publish(convert.rgb_to_image(pixels, stamp_ns=stamp))
            time.sleep(0.01)

    def progress(self) -> list[Any]:
        return self.probe.snapshot('progress')

    def close(self) -> None:
        interrupt(self.proc)
        self.probe.close()


def test_fleet_of_three_robots_shares_one_served_grm(demo_backend: Any, reward_node: Path,
                                                      repo_root: Path, tmp_path: Path) -> None:
    model = repo_root / 'robo_dopamine_ros' / 'models' / 'demo_grm'
    port = free_port()
    robots: list[Robot] = []
    server = GrmServer(demo_backend, [], port=port)
    try:
        for k in range(ROBOTS):
            robots.append(Robot(k, reward_node, model, tmp_path, f'http://127.0.0.1:{port}/v1'))
        server.tasks = tuple(r.episode.task for r in robots)
        server.start()
        for robot in robots:
            robot.probe.wait_events(EventKind.READY, EventKind.START, timeout=120)
        # Phase 1: the whole episode, 36 frames at 10 Hz -> samples every 0.5 s.
        for robot in robots:
            robot.publish(range(36))
        for robot in robots:
            wait_until(lambda r=robot: len(r.progress()) >= 8, f'{robot.ns}: 8 samples', 120)
        # Phase 2: the server dies; the robots keep sending frames.
        server.stop()
        for robot in robots:
            robot.publish(range(30, 36), offset=10)      # samples at 4.0 and 4.5 s
        for robot in robots:
            wait_until(lambda r=robot: len(r.progress()) >= 10, f'{robot.ns}: down steps', 120)
        # Phase 3: the server is back; scoring resumes without restarting a node.
        server.start()
        for robot in robots:
            robot.publish(range(30, 36), offset=20)
        for robot in robots:
            wait_until(lambda r=robot: len(r.progress()) >= 12, f'{robot.ns}: resumed', 120)
        for robot in robots:
            assert robot.proc.poll() is None, (robot.dir / 'node.log').read_text()
    finally:
        server.stop()
        for robot in robots:
            robot.close()

    for robot in robots:
        progress = robot.progress()
        up, down, back = progress[:8], progress[8:10], progress[10:12]
        assert sum(p.valid for p in up) >= 0.8 * len(up), [p.reason for p in up]
        assert not any(p.valid for p in down), [p.reason for p in down]
        assert all('backend error' in p.reason for p in down)
        assert all(p.valid for p in back), [p.reason for p in back]
        # The served answers are the in-process backend's for the same frames.
        cfg = NodeConfig.from_values(robot.params)
        engine = EpisodeEngine(demo_backend, cfg.engine, cfg.profile)
        engine.start(robot.episode.task, robot.episode.goal)
        for p in up:
            stamp = time_to_ns(p.header.stamp)
            expected = engine.step(Sample(stamp, **robot.sent[stamp]))
            assert list(p.raw_answers) == [r.score.text for r in expected.readings], robot.ns
