"""The installed ``reward_node`` executable as its own process: a bad parameter stops startup
with a clear message, and SIGINT publishes SHUTDOWN and exits within a few seconds."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from node_harness import TASK, Probe, ros_env

from robo_dopamine_ros.pipeline.worker import EventKind

pytestmark = pytest.mark.ros


@pytest.mark.parametrize(('param', 'match'), [
    ('qos.reliability:=sometimes',
     "parameter 'qos.reliability' must be one of: 'best_effort', 'reliable', got 'sometimes'"),
    ('qos.depth:=abc', "Trying to set parameter 'qos.depth' to 'abc'"),
    ('reward.gamma:=1.5', r'Parameter reward.gamma out of range .*value: 1.5'),
], ids=['choice', 'type', 'range'])
def test_node_invalid_parameter_stops_startup_with_a_clear_message(
        reward_node: Path, tmp_path: Path, param: str, match: str) -> None:
    proc = subprocess.run([str(reward_node), '--ros-args', '-r', f'__ns:=/t{uuid.uuid4().hex}',
                           '-p', param], cwd=tmp_path, env=ros_env(), capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert re.search(r'\[FATAL\].*cannot start: .*' + match, proc.stderr), proc.stderr


def test_node_sigint_publishes_shutdown_and_exits_within_seconds(reward_node: Path,
                                                                 tmp_path: Path) -> None:
    ns = f'/t{uuid.uuid4().hex[:10]}'
    probe = Probe(ns)
    probe.start()
    args = {'model.backend': 'scripted-test-double', 'task': TASK,
            'engine.missing_goal': 'blank', 'cameras.front.topic': f'{ns}/cam',
            'cameras.left.topic': "''", 'cameras.right.topic': "''"}
    command = [str(reward_node), '--ros-args', '-r', f'__ns:={ns}']
    for name, value in args.items():
        command += ['-p', f'{name}:={value}']
    proc = subprocess.Popen(command, cwd=tmp_path, env=ros_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        probe.wait_events(EventKind.READY, EventKind.START, timeout=60)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        events = probe.wait_events(EventKind.SHUTDOWN, timeout=10)
        output, _ = proc.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        probe.close()
    assert proc.returncode == 0, output
    # A hang guard, not a performance figure: the node exits within about a second.
    assert elapsed < 30.0, f'exited {elapsed:.1f} s after SIGINT'
    shutdown = events[-1]
    assert (shutdown.event, shutdown.episode_id) == (EventKind.SHUTDOWN, events[1].episode_id)
    assert 'SHUTDOWN' in output
