"""The reward node over real DDS (loopback), in-process: what it publishes for synthetic camera
streams, stale cameras, a slow model and bad input. The scripted test double stands in for the
GRM; its answers are a digest of the pixels, so a wrong image anywhere changes the numbers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import (
    SEC,
    TASK,
    NodeHarness,
    diag_values,
    differences,
    frame,
    wait_until,
)
from PIL import Image as PILImage
from robo_dopamine_ros.msg import Progress
from sensor_msgs.msg import CompressedImage

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.confidence import CANDIDATE_HOPS, ScoreDistribution
from robo_dopamine_ros.core.engine import EpisodeEngine, Sample
from robo_dopamine_ros.core.types import Answer, Query
from robo_dopamine_ros.files.frames import read_image
from robo_dopamine_ros.pipeline import images
from robo_dopamine_ros.pipeline.params import NodeConfig
from robo_dopamine_ros.pipeline.worker import EventKind
from robo_dopamine_ros.ros.messages import progress_msg, reward_msg, time_to_ns

pytestmark = pytest.mark.ros
MS = 1_000_000
#: Seconds between published frames where a test paces a live stream.
FRAME_PERIOD_S = 0.05


def now_stamp() -> int:
    """A header stamp near the node's clock (stamps far from it are reported as skewed)."""
    return time.time_ns() // MS * MS


def offline_results(cfg: NodeConfig, goal: np.ndarray | None,
                    sets: Sequence[tuple[int, dict[str, Any]]]) -> list[Any]:
    """What the core engine computes for the same messages, sampled by the same rule."""
    engine = EpisodeEngine(ScriptedBackend(), cfg.engine, cfg.profile)
    engine.start(TASK, goal)
    return [engine.step(Sample(stamp, **{r: images.to_rgb(m) for r, m in msgs.items()}))
            for stamp, msgs in sets if engine.wants(stamp)]


def test_node_publishes_what_the_engine_computes_offline(tmp_path: Path) -> None:
    goal_path = tmp_path / 'goal.png'
    PILImage.fromarray(frame(7)).save(goal_path)
    params = {'task': TASK, 'goal_image': str(goal_path), 'sampling.interval_s': 0.2}
    with NodeHarness(params, {'front': 'raw', 'left': 'compressed', 'right': 'compressed'}) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        t0 = now_stamp()
        sets = []
        for i in range(12):
            stamp = t0 + i * 100 * MS
            msgs = {'front': h.message('front', frame(10 * i), stamp, encoding='bgr8', padding=4),
                    'left': h.message('left', frame(10 * i + 1), stamp, fmt='jpeg'),
                    'right': h.message('right', frame(10 * i + 2), stamp, fmt='png')}
            for role, msg in msgs.items():
                h.publish(role, msg)
            sets.append((stamp, msgs))
        expected = offline_results(h.node.config, read_image(goal_path), sets)
        assert [r.stamp_after_ns for r in expected] == [t0 + k * 200 * MS for k in range(6)]
        progress = h.wait_progress(len(expected))
        rewards = wait_until(lambda: len(h.snapshot('reward')) == 5 and h.snapshot('reward'),
                             'five Reward messages')
        array = h.wait_diagnostics(
            lambda a: diag_values(a, 'pipeline')['sync_emitted'] == '12', 'all sets emitted')
    pipeline = diag_values(array, 'pipeline')
    for key in ('sync_dropped_stale', 'sync_dropped_overflow', 'sync_out_of_order',
                'queue_dropped', 'queue_superseded', 'queue_rejected', 'stale_sets'):
        assert pipeline[key] == '0', key
    assert len(h.snapshot('progress')) == len(expected)
    by_stamp = {time_to_ns(p.header.stamp): p for p in progress}
    for result in expected:
        assert differences(by_stamp[result.stamp_after_ns], progress_msg(result, 'cam_front'),
                           ignore={'latency_s'}) == [], result.step
    assert {p.episode_id for p in progress} == {'episode-0001'}
    assert [p.valid for p in progress] == [r.valid for r in expected]
    assert h.snapshot('confidence') == []        # the double scores no distribution
    for got, result in zip(rewards, expected[1:], strict=True):
        assert differences(got, reward_msg(result, 'cam_front')) == []


class ConfidentDouble(ScriptedBackend):
    """A TEST DOUBLE: the scripted answers plus a fixed distribution over the score, as the
    transformers backend gives them with ``model.confidence`` on."""

    def __init__(self) -> None:
        super().__init__()
        probs = [0.0] * len(CANDIDATE_HOPS)
        probs[11], probs[9] = 0.6, 0.4                       # +10 % and -10 %
        self.dist = ScoreDistribution(CANDIDATE_HOPS, tuple(probs), 0.8)

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        return [replace(a, distribution=self.dist) for a in super().generate(queries)]


def test_node_publishes_confidence_on_its_own_topic_beside_progress() -> None:
    params = {'task': TASK, 'engine.missing_goal': 'blank', 'sampling.interval_s': 0.2}
    with NodeHarness(params, backend_factory=lambda cfg: ConfidentDouble()) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        t0 = now_stamp()
        for i in range(4):
            h.publish_set(t0 + i * 200 * MS, i)
        progress = h.wait_progress(4)
        confidence = wait_until(lambda: len(h.snapshot('confidence')) == 3
                                and h.snapshot('confidence'), 'three Confidence messages')
    scored = {(p.step, time_to_ns(p.header.stamp)) for p in progress if p.step > 0}
    assert {(c.step, time_to_ns(c.header.stamp)) for c in confidence} == scored
    asked = {p.step: [m for m, s in zip(p.modes, p.parse_status, strict=True)
                      if s != Progress.PARSE_SKIPPED] for p in progress}
    for c in confidence:
        n = len(c.modes)
        assert list(c.modes) == asked[c.step] and n >= 2      # the modes the step asked
        assert list(c.p_positive) == pytest.approx([0.6] * n)
        assert list(c.mass) == pytest.approx([0.8] * n)
        assert len(c.probabilities) == n * len(CANDIDATE_HOPS)


def test_node_stale_camera_is_not_scored_until_it_resumes() -> None:
    params = {'task': TASK, 'engine.missing_goal': 'blank', 'sampling.interval_s': 0.05,
              'sync.slop_s': 0.02, 'sync.queue_size': 100, 'diagnostics.stale_after_s': 1.0}
    with NodeHarness(params) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        stamp = now_stamp()

        def live(roles: Sequence[str] | None = None) -> tuple[int, float]:
            nonlocal stamp
            stamp += 50 * MS
            h.publish_set(stamp, stamp // MS, roles)
            time.sleep(FRAME_PERIOD_S)      # frame pacing of a live camera, not a wait
            return stamp, time.monotonic()

        for _ in range(5):
            live()
        scored = len(h.wait_progress(5))
        # The left wrist camera goes silent while the others keep streaming.
        silent: list[tuple[int, float]] = []

        def only_left_stale() -> DiagnosticArray | None:
            silent.append(live(['front', 'right']))
            array = h.latest_diagnostics()
            stale = array and [diag_values(array, f'camera {role}')['stale'] == 'true'
                               for role in ('front', 'left', 'right')]
            old_enough = len(silent) > 2 and silent[2][1] < time.monotonic() - 2.0
            return array if stale == [False, True, False] and old_enough else None
        array = wait_until(only_left_stale, 'only the left camera to be reported stale', poll=0)
        values = diag_values(array, 'camera left')
        assert values['level'] == '1' and values['message'].startswith('stale: no frame for')
        # Its driver then flushes a backlog: those sets hold frames received over 2 s ago.
        backlog = [s for s, sent in silent if sent < time.monotonic() - 2.0]
        for s in backlog:
            h.publish('left', h.message('left', frame(1), s))
        h.wait_diagnostics(lambda a: int(diag_values(a, 'pipeline')['stale_sets'])
                           >= len(backlog), 'the backlog to be rejected as stale')
        assert len(h.snapshot('progress')) == scored
        # Live again: scoring resumes with fresh samples.
        resumed = [live()[0] for _ in range(5)]
        wait_until(lambda: {time_to_ns(p.header.stamp) for p in h.snapshot('progress')}
                   & set(resumed), 'progress for the resumed stream')
        h.wait_diagnostics(lambda a: diag_values(a, 'camera left')['stale'] == 'false',
                           'the left camera to be fresh again')
    stamps = [time_to_ns(p.header.stamp) for p in h.snapshot('progress')]
    assert not set(stamps) & {s for s, _ in silent}     # no reward for views of a stale camera


class SlowBackend(ScriptedBackend):
    """The test double, 0.2 s per model call (interruptible, like the real backend)."""

    def __init__(self) -> None:
        super().__init__()
        self._halt = threading.Event()

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        self._halt.wait(0.2)
        return super().generate(queries)

    def request_stop(self) -> None:
        self._halt.set()


def test_node_slow_model_drops_the_oldest_samples_and_counts_them() -> None:
    params = {'task': TASK, 'engine.missing_goal': 'blank', 'sampling.interval_s': 0.05,
              'queue.length': 2}
    with NodeHarness(params, backend_factory=lambda cfg: SlowBackend()) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        t0 = now_stamp()
        for i in range(20):                 # a burst: every set is due, the model is slow
            h.publish_set(t0 + i * 50 * MS, i)

        def settled() -> dict[str, str] | None:
            values = h.diagnostics('pipeline')
            done = len(h.snapshot('progress')) + int(values['queue_dropped'])
            return values if values['queue_pending'] == '0' and done == 20 else None
        pipeline = wait_until(settled, 'every due sample to be scored or dropped')
    assert pipeline['sync_emitted'] == '20' and int(pipeline['queue_dropped']) >= 10
    assert pipeline['queue_superseded'] == '0' and pipeline['queue_rejected'] == '0'
    warned = [diag_values(a, 'pipeline') for a in h.snapshot('diagnostics')
              if len(a.status) > 1]     # before configure there is only the model status
    assert any(w['level'] == '1' and 'slower than the sampling' in w['message'] for w in warned)
    stamps = [time_to_ns(p.header.stamp) for p in h.snapshot('progress')]
    assert stamps == sorted(set(stamps))
    assert set(stamps) <= {t0 + i * 50 * MS for i in range(20)}


def test_node_counts_bad_frames_and_stamps_and_keeps_scoring() -> None:
    params = {'task': TASK, 'engine.missing_goal': 'blank', 'sampling.interval_s': 0.05}
    with NodeHarness(params, {'front': 'raw', 'left': 'compressed', 'right': 'raw'}) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        t0 = now_stamp()

        def at(i: int) -> int:
            return t0 + i * 100 * MS

        def send(i: int, **override: Any) -> None:
            msgs = {role: h.message(role, frame(10 * i + k), at(i))
                    for k, role in enumerate(('front', 'left', 'right'))}
            msgs.update(override)
            for role, msg in msgs.items():
                h.publish(role, msg)

        send(1)
        wrong_encoding = h.message('front', frame(0), at(2))
        wrong_encoding.encoding = '16UC1'
        send(2, front=wrong_encoding)
        send(3, left=CompressedImage(header=h.message('left', frame(0), at(3)).header,
                                     format='png', data=b'not a png'))
        truncated = h.message('front', frame(0), at(4))
        truncated.data = bytes(truncated.data)[:-1]
        send(4, front=truncated)
        send(5, right=h.message('right', frame(0), 0))
        send(6)
        # Back in time within the sync slop: dropped (beyond it, a new episode: test_node_faults).
        h.publish('front', h.message('front', frame(0), at(6) - 20 * MS))
        send(7)
        future = now_stamp() + 60 * SEC                              # a badly skewed clock
        for k, role in enumerate(('front', 'left', 'right')):
            h.publish(role, h.message(role, frame(80 + k), future))
        progress = h.wait_progress(4)
        counters = ('bad_frames', 'zero_stamps', 'non_monotonic_stamps', 'skewed_stamps')
        expected = {'front': (2, 0, 1, 1), 'left': (1, 0, 0, 1), 'right': (0, 1, 0, 1)}
        h.wait_diagnostics(
            lambda a: expected == {
                role: tuple(int(diag_values(a, f'camera {role}')[c]) for c in counters)
                for role in expected}, f'camera counters {expected}')
    assert [time_to_ns(p.header.stamp) for p in progress] == [at(1), at(6), at(7), future]


def test_node_receive_policy_scores_frames_with_unset_header_stamps() -> None:
    params = {'task': TASK, 'engine.missing_goal': 'blank', 'stamps.policy': 'receive',
              'sampling.interval_s': 0.001, 'sampling.tolerance_s': 0.0, 'sync.slop_s': 0.05}
    with NodeHarness(params) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        before = now_stamp()
        for i in range(10):
            h.publish_set(0, i)             # a camera driver that never sets the stamp
            time.sleep(0.1)                 # frame pacing: sets twice the slop apart
        progress = h.wait_progress(3)
        h.wait_diagnostics(lambda a: diag_values(a, 'camera right')['zero_stamps'] == '10',
                           'every unset stamp reported')
    stamps = [time_to_ns(p.header.stamp) for p in progress]
    assert stamps == sorted(set(stamps)) and before <= stamps[0] <= now_stamp()
