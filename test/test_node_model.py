"""The reward node with the real transformers backend over real DDS (loopback), in-process: the
tiny random-weight GRM loads, warms up and publishes progress flagged invalid (its answers are
noise); a checkpoint that cannot load leaves the node unconfigured, and configure can be
retried once the parameter is fixed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from node_harness import TASK, NodeHarness, diag_values, frame
from PIL import Image as PILImage
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from robo_dopamine_ros.msg import Progress

from robo_dopamine_ros.pipeline.worker import EventKind

pytestmark = pytest.mark.ros
MS = 1_000_000


def test_node_runs_the_tiny_grm_and_flags_its_noise_invalid(tiny_arch_dir: Path,
                                                            tiny_arch: str,
                                                            tmp_path: Path) -> None:
    """Both architectures start with no parameter beyond model.path: config.json decides."""
    goal_path = tmp_path / 'goal.png'
    PILImage.fromarray(frame(7)).save(goal_path)
    params = {'model.backend': 'transformers', 'model.path': str(tiny_arch_dir),
              'model.device': 'cpu', 'task': TASK, 'goal_image': str(goal_path)}
    with NodeHarness(params) as h:
        h.wait_events(EventKind.READY, EventKind.START, timeout=120)
        t0 = time.time_ns() // MS * MS
        for i in range(2):
            h.publish_set(t0 + i * 1000 * MS, i)
        start, step = h.wait_progress(2, timeout=120)
        model = h.wait_diagnostics(lambda a: diag_values(a, 'model')['steps'] == '1',
                                   'the step in the diagnostics')
    assert (start.step, start.valid, step.step) == (0, True, 1)
    assert step.model_id == str(tiny_arch_dir) and step.view_layout == 'three-view'
    assert not step.valid and step.status in ('partial', 'held')
    assert Progress.PARSE_FAILED in step.parse_status and step.reason
    assert step.latency_s > 0
    assert h.node.config.profile.architecture == tiny_arch
    values = diag_values(model, 'model')
    assert (values['ready'], values['device'], values['model_id']) == (
        'true', 'cpu', str(tiny_arch_dir))
    assert values['invalid_steps'] == '1' and float(values['latency_p50_s']) > 0


def test_node_model_load_failure_leaves_the_node_unconfigured_and_retryable(
        tiny_grm_synthetic_dir: Path, tmp_path: Path) -> None:
    """A failed configure does not end the process: the reason is in /diagnostics, the
    parameter can be fixed and configure retried (the managed node's contract)."""
    params = {'model.backend': 'transformers', 'model.path': str(tmp_path / 'missing-grm'),
              'model.device': 'cpu', 'task': TASK, 'engine.missing_goal': 'blank',
              'autostart': False}
    with NodeHarness(params) as h:
        assert h.node.trigger_configure() is TransitionCallbackReturn.FAILURE
        assert h.node.state == 'unconfigured' and not h.node.stop_requested.is_set()
        status = h.wait_diagnostics(
            lambda a: 'does not exist' in diag_values(a, 'model')['message'],
            'the load error in the diagnostics')
        assert diag_values(status, 'model')['level'] == '2'
        assert h.snapshot('episode') == []                 # no READY, no episode
        fixed = h.node.set_parameters([Parameter('model.path', value=str(tiny_grm_synthetic_dir))])
        assert fixed[0].successful
        assert h.node.trigger_configure() is TransitionCallbackReturn.SUCCESS
        assert h.node.trigger_activate() is TransitionCallbackReturn.SUCCESS
        h.wait_events(EventKind.READY, EventKind.START)
        refused = h.node.set_parameters([Parameter('model.path', value='/elsewhere')])
        assert not refused[0].successful and 'change while unconfigured' in refused[0].reason
