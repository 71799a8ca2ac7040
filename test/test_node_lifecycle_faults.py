"""The reward node's lifecycle failure edges through its ROS surface, driven by a manager-style
client (test/lifecycle_client.py: ``change_state`` with timeouts and retries) over real DDS,
in-process: a failed reload is retried by an operator without ending the node; configure and
activate are bounded by ``lifecycle.transition_timeout_s`` and the node keeps answering
``get_state`` and parameter requests while a model loads; a load past its bound is cancelled
and freed before the next configure loads another."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from lifecycle_client import LifecycleClient
from node_harness import TASK, NodeHarness, diag_values, wait_until
from openai_server import FakeOpenAI
from test_node_lifecycle import PARAMS, scored_after_activation
from test_node_model_states import Factory
from test_node_remote import Switch, free_port, remote

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.errors import ModelLoadError
from robo_dopamine_ros.pipeline.worker import EventKind

pytestmark = pytest.mark.ros


@contextmanager
def manager(h: NodeHarness) -> Iterator[LifecycleClient]:
    client = LifecycleClient(h.probe.node, f'{h.ns}/robo_dopamine')
    try:
        yield client
    finally:
        client.destroy()


def test_lifecycle_fault_failed_reactivate_is_retried_and_the_node_survives() -> None:
    factory = Factory()
    params = {**PARAMS, 'task': TASK, 'autostart': True, 'model.release_on_deactivate': True}
    with NodeHarness(params, {'front': 'raw'}, backend_factory=factory) as h, manager(h) as m:
        h.wait_events(EventKind.READY, EventKind.START)
        assert m.change_state('deactivate')
        factory.down.set()                          # the model cannot load now
        assert not m.change_state('activate', retries=0)
        assert m.get_state() == 'inactive' and factory.alive() == 0
        assert not m.change_state('activate', retries=0)    # a retry loads again ...
        assert len(factory.backends) == 3 and factory.alive() == 0
        factory.down.clear()                        # ... and once the model is back, works
        assert m.change_state('activate', retries=0)
        h.wait_cameras()
        assert scored_after_activation(h).valid
        assert h.node.fatal_error is None and not h.node.stop_requested.is_set()


def test_lifecycle_fault_served_model_down_at_activate_is_bounded_and_the_node_answers(
        ) -> None:
    port = free_port()
    params = remote(port, **{'model.release_on_deactivate': True, 'model.load_retry_s': 0.2,
                             # the bound a reload must fit in on a loaded 2-core machine
                             'lifecycle.transition_timeout_s': 6.0})
    server = FakeOpenAI(Switch(), port=port).__enter__()
    try:
        with NodeHarness(params, {'front': 'raw'}) as h, manager(h) as m:
            h.wait_events(EventKind.READY, EventKind.START)
            assert m.change_state('deactivate')
            server.__exit__()                                   # the served model goes down
            answer: list[bool] = []
            activate = threading.Thread(
                target=lambda: answer.append(m.change_state('activate', retries=0)))
            activate.start()
            # While the reload retries, the node answers get_state and parameter requests, and
            # /diagnostics says why it is not scoring yet.
            wait_until(lambda: m.get_state() == 'activating', 'get_state during the load')
            value = m.get_parameter('lifecycle.transition_timeout_s')
            assert value.double_value == 6.0
            h.wait_diagnostics(lambda a: diag_values(a, 'model').get('state', '').startswith(
                'activating'), '/diagnostics during the load')
            activate.join(timeout=30)
            assert answer == [False], 'activate did not return within its bound'
            assert m.get_state() == 'inactive' and h.node.fatal_error is None
            server = FakeOpenAI(Switch(), port=port).__enter__()   # the server is back
            assert m.change_state('activate', retries=0)
            h.wait_cameras()
            assert scored_after_activation(h).valid
    finally:
        server.__exit__()


class BlockingFactory(Factory):
    """The first build blocks (as a checkpoint load that cannot be interrupted) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, cfg: Any = None) -> Any:
        if not self.backends:
            self.entered.set()
            assert self.release.wait(60), 'the test never released the load'
        return super().__call__(cfg)


def test_lifecycle_fault_configure_past_its_bound_fails_and_never_double_loads() -> None:
    factory = BlockingFactory()
    # A bound the final configure (a test double's load) meets on a loaded 2-core machine.
    params = {**PARAMS, 'autostart': False, 'lifecycle.transition_timeout_s': 3.0}
    with NodeHarness(params, {'front': 'raw'}, backend_factory=factory) as h, manager(h) as m:
        answer: list[bool] = []
        configure = threading.Thread(
            target=lambda: answer.append(m.change_state('configure', retries=0)))
        configure.start()
        assert factory.entered.wait(30)
        assert m.get_state() == 'configuring'       # the node answers during the load
        assert not m.change_state('shutdown', retries=0)    # one transition at a time
        configure.join(timeout=30)
        assert answer == [False] and m.get_state() == 'unconfigured'
        # The abandoned load is still running: configure refuses to load a second model.
        assert not m.change_state('configure', retries=0)
        assert 'still being freed' in h.node._error
        factory.release.set()                       # the load returns: it is freed at once
        wait_until(lambda: len(factory.backends) == 1 and factory.alive() == 0, 'the load freed')
        assert m.change_state('configure', retries=0)
        assert factory.alive() == 1 and m.get_state() == 'inactive'


def test_lifecycle_fault_a_load_error_fails_configure_and_a_retry_configures() -> None:
    attempts: list[int] = []

    def fails_once(cfg: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise ModelLoadError('model directory does not exist')
        return ScriptedBackend()

    with NodeHarness({**PARAMS, 'autostart': False}, {'front': 'raw'},
                     backend_factory=fails_once) as h, manager(h) as m:
        assert not m.change_state('configure', retries=0)
        assert m.get_state() == 'unconfigured' and 'does not exist' in h.node._error
        assert m.change_state('configure', retries=0) and m.change_state('activate')
        assert h.node.fatal_error is None


@pytest.mark.parametrize('start', ['unconfigured', 'inactive', 'active'])
def test_lifecycle_fault_shutdown_from_each_state_frees_the_model(start: str) -> None:
    factory = Factory()
    with NodeHarness({**PARAMS, 'task': TASK, 'autostart': False}, {'front': 'raw'},
                     backend_factory=factory) as h, manager(h) as m:
        for label in {'unconfigured': (), 'inactive': ('configure',),
                      'active': ('configure', 'activate')}[start]:
            assert m.change_state(label, retries=0)
        assert m.get_state() == start
        assert m.change_state('shutdown', retries=0)
        assert m.get_state() == 'finalized' and h.node.stop_requested.is_set()
        assert factory.alive() == 0 and h.node.fatal_error is None
        if start == 'active':
            assert h.wait_events(EventKind.SHUTDOWN)[-1].episode_id
