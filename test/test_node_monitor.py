"""The task monitor on the live node: ``Progress.task_status`` per sample and TASK_STATUS events
on ``~/episode`` when it changes (core/monitor.py rules), over real DDS."""

from __future__ import annotations

import time
from typing import Any

import pytest
from node_harness import SEC, TASK, NodeHarness, wait_until

from robo_dopamine_ros.backends.scripted import ScriptedBackend, sequence_script
from robo_dopamine_ros.pipeline.worker import EventKind

pytestmark = pytest.mark.ros

#: Forward-only readings (progress = the answer): up to the goal, held, then a sustained drop.
ANSWERS = ['+30%', '+60%', '+100%', '+100%', '+40%', '+30%']
#: The warm-up at configure asks one query per mode before any sample.
WARM_UP = ['+0%'] * 3


def test_node_monitor_reports_success_then_regression_as_status_and_events() -> None:
    params = {'task': TASK, 'engine.missing_goal': 'blank', 'engine.modes': ['forward'],
              'engine.start_goal_threshold': 0.0, 'stamps.max_age_s': 1e6,
              'monitor.success_samples': 2, 'monitor.regress_samples': 2}
    script = sequence_script(WARM_UP + ANSWERS)
    with NodeHarness(params, backend_factory=lambda cfg: ScriptedBackend(script)) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        t0 = time.time_ns()
        for k in range(len(ANSWERS) + 1):        # START and one sample per answer
            h.publish_set(t0 + k * SEC, k)
        progress = h.wait_progress(len(ANSWERS) + 1)

        def status_events() -> list[Any] | None:
            found = [e for e in h.snapshot('episode') if e.event == EventKind.TASK_STATUS]
            return found if len(found) >= 2 else None
        events = wait_until(status_events, 'two TASK_STATUS events')
    assert [round(p.progress, 2) for p in progress] == [0.0, 0.3, 0.6, 1.0, 1.0, 0.4, 0.3]
    assert [p.task_status for p in progress] == [
        'running', 'running', 'running', 'running', 'succeeded', 'succeeded', 'regressing']
    assert [p.status for p in progress[1:]] == ['ok'] * len(ANSWERS)
    stamps = [e.header.stamp.sec * SEC + e.header.stamp.nanosec for e in events]
    assert stamps == [t0 + 4 * SEC, t0 + 6 * SEC]
    assert events[0].detail.startswith('succeeded: progress >= 0.95 for 2 samples')
    assert events[1].detail.startswith('regressing: progress 0.30 is 0.70 below the best')
