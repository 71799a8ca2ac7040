"""A fleet: three reward-node processes (namespaces robot0..2) score through one served GRM.

With the real server: the session's ``vllm serve`` (``served_grm``, test/vllm_serve.py) of a
servable GRM, each node on ``model.backend: openai`` with lossless PNG images. Each robot plays
its own held-out synthetic episode over real DDS; the readings must be the in-process
transformers backend's greedy answers for the same frames on >= 95 % of the queries, and every
difference is printed with both answers.

With the scripted test double of ``vllm serve`` (test/openai_server.py: a fixed answer after a
fixed latency, for fault injection): while the server is down the steps are flagged invalid,
and scoring resumes when it is back, without restarting any node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_harness import Probe, start_node, wait_until
from openai_server import FakeOpenAI, Reply, completion
from PIL import Image as PILImage
from rclpy.qos import QoSProfile, ReliabilityPolicy
from robo_dopamine_ros.msg import Progress
from sensor_msgs.msg import Image
from vllm_serve import ServedGrm, free_port

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
#: Share of the served readings that must equal the in-process ones (float kernels differ).
AGREEMENT = 0.95


def robot_params(ns: str, model: dict[str, Any], goal: Path, task: str) -> dict[str, Any]:
    return {
        **model, 'model.device': 'cpu', 'model.openai.timeout_s': 120.0,
        'model.openai.max_retries': 1, 'model.load_retry_s': 1.0,
        'qos.reliability': 'reliable', 'qos.depth': 100,
        'sync.queue_size': 100, 'queue.length': 100, 'diagnostics.stale_after_s': 600.0,
        'sampling.interval_s': INTERVAL_S, 'task': task, 'goal_image': str(goal),
        **{f'cameras.{role}.topic': f'{ns}/{CAMERAS[role]}' for role in ROLES}}


class Robot:
    """One robot: its node process, its episode, its cameras and a probe on its outputs."""

    def __init__(self, index: int, reward_node: Path, model: dict[str, Any], tmp: Path) -> None:
        self.ns = f'/robot{index}'
        self.dir = tmp / f'robot{index}'
        self.dir.mkdir()
        self.episode: SyntheticEpisode = render_episode(EpisodeSpec(
            seed=900 + index, num_frames=36, fps=10.0, size=(160, 120),
            outcome=Outcome.SUCCESS))
        goal = self.dir / 'goal.png'
        PILImage.fromarray(self.episode.goal).save(goal)
        self.params = robot_params(self.ns, model, goal, self.episode.task)
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

    def log(self) -> str:
        return (self.dir / 'node.log').read_text(errors='replace')[-4000:]

    def close(self) -> None:
        interrupt(self.proc)
        self.probe.close()


@pytest.fixture
def fleet(request: pytest.FixtureRequest, reward_node: Path,
          tmp_path: Path) -> Iterator[Any]:
    """A factory of ``ROBOTS`` robots on the given model parameters; all closed at the end."""
    robots: list[Robot] = []

    def make(model: dict[str, Any]) -> list[Robot]:
        robots.extend(Robot(k, reward_node, model, tmp_path) for k in range(ROBOTS))
        return robots

    try:
        yield make
    finally:
        for robot in robots:
            robot.close()


def in_process_backend(served: ServedGrm) -> Any:
    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig

    return TransformersBackend(TransformersConfig(model=str(served.model), device='cpu',
                                                  pixel_limits=served.profile.pixel_limits))


def test_fleet_of_three_robots_shares_one_real_vllm_server(served_grm: ServedGrm,
                                                            fleet: Any) -> None:
    robots = fleet(served_grm.node_params())
    for robot in robots:
        robot.probe.wait_events(EventKind.READY, EventKind.START, timeout=300)
    for robot in robots:       # the whole episode, 36 frames at 10 Hz -> a sample every 0.5 s
        robot.publish(range(36))
    for robot in robots:
        wait_until(lambda r=robot: len(r.progress()) >= 8, f'{robot.ns}: 8 samples', 600)
    for robot in robots:
        assert robot.proc.poll() is None, robot.log()

    backend = in_process_backend(served_grm)
    try:
        compared, differences, answers = 0, [], set()
        for robot in robots:
            progress = robot.progress()[:8]
            assert all(p.raw_answers and 'backend error' not in p.reason for p in progress), \
                ([p.reason for p in progress], served_grm.server.tail())
            cfg = NodeConfig.from_values(robot.params)
            engine = EpisodeEngine(backend, cfg.engine, cfg.profile)
            engine.start(robot.episode.task, robot.episode.goal)
            for p in progress:
                stamp = time_to_ns(p.header.stamp)
                expected = engine.step(Sample(stamp, **robot.sent[stamp]))
                local = [r.score.text for r in expected.readings]
                for mode, served, here, status in zip(p.modes, p.raw_answers, local,
                                                      p.parse_status, strict=True):
                    if status == Progress.PARSE_SKIPPED:     # the episode start: nothing asked
                        continue
                    compared += 1
                    answers.add(served)
                    if served != here:
                        differences.append({'robot': robot.ns, 'step': p.step, 'mode': mode,
                                            'served': served, 'in_process': here})
    finally:
        backend.close()
    print('served-vs-in-process', json.dumps({
        'model': str(served_grm.model), 'server_start_s': round(served_grm.server.start_s, 1),
        'compared': compared, 'distinct_answers': len(answers), 'examples': sorted(answers)[:3],
        'differences': differences}))
    assert compared >= ROBOTS * 7 * 3
    assert len(differences) <= (1 - AGREEMENT) * compared, differences


def test_fleet_rides_out_a_server_outage(fleet: Any, demo_grm_dir: Path) -> None:
    port = free_port()
    reply = Reply(200, completion('<score>+5%</score>'), delay_s=0.05)
    server = FakeOpenAI(lambda n, body: reply, port=port, record=False).__enter__()
    try:
        robots = fleet({'model.backend': 'openai', 'model.path': str(demo_grm_dir),
                        'model.openai.served_model': 'demo-grm',
                        'model.openai.base_url': f'http://127.0.0.1:{port}/v1'})
        for robot in robots:
            robot.probe.wait_events(EventKind.READY, EventKind.START, timeout=120)
        # Phase 1: the whole episode, 36 frames at 10 Hz -> samples every 0.5 s.
        for robot in robots:
            robot.publish(range(36))
        for robot in robots:
            wait_until(lambda r=robot: len(r.progress()) >= 8, f'{robot.ns}: 8 samples', 120)
        # Phase 2: the server dies; the robots keep sending frames.
        server.__exit__()
        for robot in robots:
            robot.publish(range(30, 36), offset=10)      # samples at 4.0 and 4.5 s
        for robot in robots:
            wait_until(lambda r=robot: len(r.progress()) >= 10, f'{robot.ns}: down steps', 120)
        # Phase 3: the server is back on its port; scoring resumes without restarting a node.
        server = FakeOpenAI(lambda n, body: reply, port=port, record=False).__enter__()
        for robot in robots:
            robot.publish(range(30, 36), offset=20)
        for robot in robots:
            wait_until(lambda r=robot: len(r.progress()) >= 12, f'{robot.ns}: resumed', 120)
        for robot in robots:
            assert robot.proc.poll() is None, robot.log()
    finally:
        server.__exit__()
    for robot in robots:
        progress = robot.progress()
        up, down, back = progress[:8], progress[8:10], progress[10:12]
        assert sum(p.valid for p in up) >= 0.8 * len(up), [p.reason for p in up]
        assert not any(p.valid for p in down), [p.reason for p in down]
        assert all('backend error' in p.reason for p in down)
        assert all(p.valid for p in back), [p.reason for p in back]
