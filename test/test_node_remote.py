"""The reward node scoring through a served model (``model.backend: openai``) over real DDS, in
process, against a scripted OpenAI-compatible server on loopback (test/openai_server.py, a test
double of vLLM): a server unreachable at startup fails ``configure`` (or is waited for with
``model.load_retry_s``); errors mid-episode flag steps invalid and hold progress, and scoring
resumes when the server answers again, without restarting the node."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from node_harness import TASK, NodeHarness, diag_values, wait_until
from openai_server import FakeOpenAI, Reply, completion
from rclpy.lifecycle import TransitionCallbackReturn

from robo_dopamine_ros.pipeline.worker import EventKind
from robo_dopamine_ros.ros.messages import time_to_ns

pytestmark = pytest.mark.ros
MS = 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def remote(port: int, **extra: Any) -> dict[str, Any]:
    return {'model.backend': 'openai', 'model.openai.base_url': f'http://127.0.0.1:{port}/v1',
            'model.openai.served_model': 'grm-test', 'model.openai.timeout_s': 2.0,
            'model.openai.max_retries': 1, 'model.openai.image_format': 'png',
            'engine.missing_goal': 'blank', 'engine.modes': ['incremental', 'forward'],
            'sampling.interval_s': 0.05, 'task': TASK, **extra}


class Switch:
    """What the scripted server does now: answer, fail with HTTP 500, or answer garbage."""

    def __init__(self) -> None:
        self.mode = 'ok'

    def __call__(self, n: int, body: dict[str, Any]) -> Reply:
        if self.mode == 'error':
            return Reply(500, b'{"error": "engine died"}')
        if self.mode == 'malformed':
            return Reply(200, b'{"choices": []}')
        return Reply(200, completion('<score>+10%</score>'))


def now_stamp() -> int:
    return time.time_ns() // MS * MS


def test_remote_unreachable_server_fails_configure_and_the_node_stays_up() -> None:
    port = free_port()
    with NodeHarness({**remote(port), 'autostart': False}, {'front': 'raw'}) as h:
        assert h.node.trigger_configure() is TransitionCallbackReturn.FAILURE
        assert h.node.state == 'unconfigured' and not h.node.stop_requested.is_set()
        status = h.wait_diagnostics(
            lambda a: 'warm-up failed' in diag_values(a, 'model')['message'], 'the reason')
        assert f'127.0.0.1:{port}' in diag_values(status, 'model')['message']
        with FakeOpenAI(Switch(), port=port):                  # the server comes up
            assert h.node.trigger_configure() is TransitionCallbackReturn.SUCCESS


def test_remote_load_retry_waits_for_the_server_then_scores() -> None:
    port = free_port()
    later = threading.Timer(1.5, lambda: server.__enter__())
    server = FakeOpenAI(Switch(), port=port)
    later.start()
    try:
        with NodeHarness(remote(port, **{'model.load_retry_s': 0.5}), {'front': 'raw'}) as h:
            h.wait_events(EventKind.READY, EventKind.START)
            t0 = now_stamp()
            h.publish_set(t0, 0)
            h.publish_set(t0 + 100 * MS, 1)
            progress = h.wait_progress(2)
            assert progress[-1].valid and progress[-1].progress == pytest.approx(0.1)
    finally:
        later.join()
        server.__exit__()


def test_remote_failures_mid_episode_are_flagged_and_scoring_resumes() -> None:
    port = free_port()
    switch = Switch()
    with FakeOpenAI(switch, port=port) as server, NodeHarness(remote(port),
                                                              {'front': 'raw'}) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        t0 = now_stamp()
        stamps = iter(range(100))

        def step(mode: str) -> Any:
            switch.mode = mode
            i = next(stamps)
            h.publish_set(t0 + i * 100 * MS, i)
            return wait_until(lambda: next((p for p in h.snapshot('progress')
                                            if time_to_ns(p.header.stamp) == t0 + i * 100 * MS),
                                           None), f'step {i}')

        start = step('ok')
        good = step('ok')
        assert start.valid and good.valid and good.progress == pytest.approx(0.1)
        failed = step('error')
        garbled = step('malformed')
        for bad in (failed, garbled):
            assert not bad.valid and bad.status == 'held'
            assert 'no usable reading (incremental, forward): backend error' in bad.reason
            assert bad.progress == pytest.approx(0.1)           # held, never a made-up value
        server.__exit__()                                       # the server dies ...
        dead = step('ok')
        assert not dead.valid and 'backend error' in dead.reason
        with FakeOpenAI(switch, port=port):                     # ... and comes back
            back = step('ok')
            assert back.valid and back.progress > good.progress
        model = h.wait_diagnostics(
            lambda a: int(diag_values(a, 'model').get('backend_errors', 0)) >= 6,
            'the backend errors counted')
    assert int(diag_values(model, 'model')['invalid_steps']) == 3
