"""The reward node as a managed (lifecycle) node over real DDS (loopback), in-process: services
from configure on, scoring only while active, PAUSED on deactivate, the model released by
cleanup (and by deactivate with ``model.release_on_deactivate``)."""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import pytest
from node_harness import TASK, NodeHarness, wait_until
from rclpy.lifecycle import TransitionCallbackReturn
from robo_dopamine_ros.srv import SetTask

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.pipeline.worker import EventKind
from robo_dopamine_ros.ros.messages import time_to_ns

pytestmark = pytest.mark.ros
MS = 1_000_000
SUCCESS = TransitionCallbackReturn.SUCCESS
PARAMS = {'engine.missing_goal': 'blank', 'sampling.interval_s': 0.05,
          'engine.modes': ['incremental', 'forward'], 'autostart': False}


class Built:
    """A backend factory that remembers (weakly) every backend it built."""

    def __init__(self) -> None:
        self.backends: list[weakref.ref[ScriptedBackend]] = []

    def __call__(self, cfg: Any) -> ScriptedBackend:
        backend = ScriptedBackend()
        self.backends.append(weakref.ref(backend))
        return backend

    def alive(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self.backends)


def now_stamp() -> int:
    return time.time_ns() // MS * MS


def scored_after_activation(h: NodeHarness) -> Any:
    """Publish a set until one is scored; returns its Progress.

    The camera subscriptions are made anew by each activation, and a publisher may still count
    the old ones for a moment: a set sent then reaches nobody (that is the point of
    deactivating), so the first sets are repeated with new stamps until one arrives.
    """
    for attempt in range(40):
        stamp = now_stamp()
        h.publish_set(stamp, 100 + attempt)
        try:
            return wait_until(lambda s=stamp: next(
                (p for p in h.snapshot('progress') if time_to_ns(p.header.stamp) == s), None),
                'a scored set', timeout=0.5)
        except AssertionError:
            continue
    raise AssertionError('no set was scored after the activation')


def test_lifecycle_transitions_gate_scoring_and_release_the_model() -> None:
    built = Built()
    with NodeHarness(PARAMS, {'front': 'raw'}, backend_factory=built) as h:
        assert h.node.state == 'unconfigured' and built.alive() == 0
        assert h.node.trigger_configure() is SUCCESS
        assert h.node.state == 'inactive' and built.alive() == 1
        # Services exist from configure on: the operator sets the task before scoring.
        answer = h.call(SetTask, 'set_task', SetTask.Request(task=TASK))
        assert answer.success and 'starts when the node is activated' in answer.message
        assert h.snapshot('episode') == []          # nothing is published while inactive

        assert h.node.trigger_activate() is SUCCESS
        h.wait_cameras()
        first = h.wait_events(EventKind.READY, EventKind.START)[-1].episode_id
        t0 = now_stamp()
        h.publish_set(t0, 0)
        h.publish_set(t0 + 100 * MS, 1)
        assert len(h.wait_progress(2)) == 2

        assert h.node.trigger_deactivate() is SUCCESS
        paused = h.wait_events(EventKind.PAUSED)[-1]
        assert paused.episode_id == first and built.alive() == 1     # kept loaded
        assert h.node.trigger_activate() is SUCCESS
        h.wait_cameras()
        second = h.wait_events(EventKind.PAUSED, EventKind.READY, EventKind.START)[-1]
        assert second.episode_id != first             # a new episode after the pause
        assert scored_after_activation(h).episode_id == second.episode_id

        assert h.node.trigger_deactivate() is SUCCESS
        assert h.node.trigger_cleanup() is SUCCESS
        assert h.node.state == 'unconfigured' and built.alive() == 0   # the model is gone


def test_lifecycle_inactive_node_publishes_nothing_for_frames_sent_meanwhile() -> None:
    with NodeHarness({**PARAMS, 'task': TASK, 'autostart': True}, {'front': 'raw'}) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        t0 = now_stamp()
        h.publish_set(t0, 0)
        h.wait_progress(1)
        assert h.node.trigger_deactivate() is SUCCESS
        inactive = [t0 + i * 100 * MS for i in range(1, 4)]
        for i, stamp in enumerate(inactive):        # nobody listens to these
            h.publish_set(stamp, i + 1)
        assert h.node.trigger_activate() is SUCCESS
        h.wait_cameras()
        h.wait_events(EventKind.PAUSED, EventKind.READY, EventKind.START)
        marker = time_to_ns(scored_after_activation(h).header.stamp)
    stamps = [time_to_ns(p.header.stamp) for p in h.snapshot('progress')]
    assert stamps[0] == t0 and marker in stamps
    assert not set(stamps) & set(inactive)          # nothing of what was sent while inactive


def test_lifecycle_release_on_deactivate_frees_the_model_and_activate_reloads_it() -> None:
    built = Built()
    params = {**PARAMS, 'task': TASK, 'autostart': True, 'model.release_on_deactivate': True}
    with NodeHarness(params, {'front': 'raw'}, backend_factory=built) as h:
        h.wait_events(EventKind.READY, EventKind.START)
        assert h.node.trigger_deactivate() is SUCCESS
        assert built.alive() == 0 and len(built.backends) == 1
        assert h.node.trigger_activate() is SUCCESS
        assert built.alive() == 1 and len(built.backends) == 2
        h.wait_cameras()
        assert scored_after_activation(h).valid


def test_lifecycle_shutdown_from_active_announces_it_and_ends_the_node() -> None:
    built = Built()
    with NodeHarness({**PARAMS, 'task': TASK, 'autostart': True}, {'front': 'raw'},
                     backend_factory=built) as h:
        first = h.wait_events(EventKind.READY, EventKind.START)[-1].episode_id
        assert h.node.trigger_shutdown() is SUCCESS
        assert h.node.state == 'finalized' and h.node.stop_requested.is_set()
        shutdown = h.wait_events(EventKind.SHUTDOWN)[-1]
        assert shutdown.episode_id == first and built.alive() == 0
        assert h.node.fatal_error is None                   # main() then exits 0
