"""The model's state machine under the worker (pipeline/model.py, pipeline/worker.py): failure
edges survivable (a failed reload frees what it built and the next activate loads again), loads
cancellable, cancellation never lost between dequeue and ``generate``. Races are driven with
events, never sleeps. Pure Python: no DDS."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import pytest
from node_harness import SEC, TASK, wait_until
from test_node_lifecycle import Built
from test_node_worker import GOAL, GatedBackend, Recorder, item, make_worker, offer_and_submit

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.engine import EngineConfig, Sample
from robo_dopamine_ros.core.errors import BackendStoppedError
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.core.types import Answer, Query
from robo_dopamine_ros.pipeline.model import TRANSITIONS, ModelState
from robo_dopamine_ros.pipeline.worker import EventKind, InferenceWorker, QueuedSample


class WarmUpFails(ScriptedBackend):
    """A test double whose every answer carries an error while ``down`` is set (as a served
    model that is unreachable): its warm-up fails."""

    down = threading.Event()

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        if self.down.is_set():
            return [Answer(text='', error='connection refused') for _ in queries]
        return super().generate(queries)


class Factory(Built):
    """Builds :class:`WarmUpFails` backends (the worker's or the node's factory) and remembers
    them weakly (to see them freed)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()

    def __call__(self, cfg: Any = None) -> WarmUpFails:
        backend = WarmUpFails()
        backend.down = self.down
        self.backends.append(weakref.ref(backend))
        return backend


def test_model_transition_table_is_closed_and_closed_is_terminal() -> None:
    assert set(TRANSITIONS) == set(ModelState)
    assert all(targets <= set(ModelState) for targets in TRANSITIONS.values())
    assert TRANSITIONS[ModelState.CLOSED] == frozenset()
    assert ModelState.ACTIVE not in TRANSITIONS[ModelState.EMPTY]      # never active unloaded


def test_worker_failed_reactivate_reloads_on_retry_and_never_dies() -> None:
    """release_on_deactivate: deactivate; activate while the warm-up fails -> activate fails;
    the next activate must load again (not report success on a half-loaded model), and no
    error ever reaches the fatal path."""
    factory = Factory()
    worker, rec = make_worker(factory)
    try:
        assert worker.deactivate(release=True).result(timeout=30).success
        assert worker.model_state is ModelState.EMPTY and factory.alive() == 0
        factory.down.set()
        failed = worker.activate().result(timeout=30)
        assert not failed.success and 'warm-up failed' in failed.message
        assert worker.model_state is ModelState.EMPTY and worker.backend is None
        assert factory.alive() == 0, 'the failed load was not freed'
        retried = worker.activate().result(timeout=30)
        assert not retried.success and len(factory.backends) == 3     # it loaded again
        assert not worker.ready and worker.offer(SEC) is None
        factory.down.clear()                                        # the model is back
        assert worker.activate().result(timeout=30).success
        assert worker.model_state is ModelState.ACTIVE and factory.alive() == 1
        offer_and_submit(worker, 1)
        offer_and_submit(worker, 2)
        wait_until(lambda: len(rec.scored()) == 2, 'two results after the retry')
        assert rec.fatal == []
    finally:
        assert worker.stop(5.0)
    assert factory.alive() == 0


def test_worker_cancelled_load_ends_empty_and_frees_what_it_built() -> None:
    factory = Factory()
    factory.down.set()
    rec = Recorder()
    worker = InferenceWorker(factory, EngineConfig(), GRM_3B, task=TASK, goal=GOAL,
                             queue_length=2, logger=logging.getLogger('test'),
                             load_retry_s=30.0,   # a long wait: the cancel must cut it short
                             on_result=rec.result, on_event=rec.event,
                             on_fatal=rec.fatal.append)
    worker.start()
    try:
        wait_until(lambda: worker.load_error, 'the first failed attempt')
        worker.cancel_load()
        with pytest.raises(BackendStoppedError, match='cancelled'):
            worker.loaded.result(timeout=30)
        wait_until(lambda: not worker.alive, 'the worker to end')
        assert worker.model_state is ModelState.CLOSED and factory.alive() == 0
        assert rec.fatal == []
    finally:
        assert worker.stop(5.0)


class DecodeGate:
    """A sample whose decoding (on the worker thread, after dequeue) waits for the test."""

    def __init__(self, t: int) -> None:
        self.decoding = threading.Event()
        self.release = threading.Event()
        self.inner = item(t)

    def load(self) -> Sample:
        self.decoding.set()
        assert self.release.wait(30), 'the test never released the decode'
        return self.inner.load()

    def queued(self) -> QueuedSample:
        return QueuedSample(self.inner.stamp_ns, self.inner.frame_id, self.load)


def test_worker_deactivate_between_dequeue_and_generate_cancels_that_step() -> None:
    gated = GatedBackend()
    worker, rec = make_worker(lambda: gated)
    try:
        offer_and_submit(worker, 1)                         # START: no model call
        wait_until(lambda: len(rec.scored()) == 1, 'START')
        calls = len(gated.batches)
        gate = DecodeGate(2)
        ticket = worker.offer(2 * SEC)
        assert ticket is not None
        worker.submit(ticket, gate.queued())
        assert gate.decoding.wait(30)                       # dequeued, not yet in the model
        done = worker.deactivate(release=False)
        gate.release.set()
        assert done.result(timeout=30).success
        assert len(gated.batches) == calls                  # the model was never called
        assert rec.scored() == [('episode-0001', 0, 1)] and rec.fatal == []
    finally:
        assert worker.stop(5.0)


def test_worker_stale_cancel_does_not_drop_the_next_step() -> None:
    """A cancel flag left over from an earlier step (the transformers backend keeps it until a
    call consumes it) makes the next call refuse; the model slot runs that call again."""

    class Sticky(ScriptedBackend):
        def __init__(self) -> None:
            super().__init__()
            self.flag = False

        def cancel(self) -> None:
            self.flag = True

        def generate(self, queries: Sequence[Query]) -> list[Answer]:
            if self.flag:
                self.flag = False
                raise BackendStoppedError('cancelled')
            return super().generate(queries)

    backend = Sticky()
    worker, rec = make_worker(lambda: backend, goal=GOAL)
    try:
        offer_and_submit(worker, 1)
        wait_until(lambda: len(rec.scored()) == 1, 'START')
        backend.cancel()                                    # stale: no step was underway
        offer_and_submit(worker, 2)
        wait_until(lambda: len(rec.scored()) == 2, 'the step despite the stale cancel')
        assert rec.kinds()[:2] == [EventKind.READY, EventKind.START]
    finally:
        assert worker.stop(5.0)


def test_worker_stop_during_a_load_frees_the_model_once_its_builder_returns() -> None:
    factory = Factory()
    building, release = threading.Event(), threading.Event()

    def slow_build() -> WarmUpFails:
        building.set()
        assert release.wait(30), 'the test never released the build'
        return factory()

    worker, rec = make_worker(slow_build, activate=False)
    assert building.wait(30)
    assert not worker.stop(0.1)             # the builder cannot be interrupted ...
    assert worker.model_state is ModelState.LOADING
    release.set()                           # ... when it returns, its model is closed
    wait_until(lambda: not worker.alive, 'the worker to end')
    with pytest.raises(BackendStoppedError):
        worker.loaded.result(timeout=5)
    assert worker.model_state is ModelState.CLOSED and len(factory.backends) == 1
    assert factory.alive() == 0 and rec.fatal == []
