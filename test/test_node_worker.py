"""The inference worker (pipeline/worker.py): readiness, the bounded drop-oldest queue,
commands that never mix two episodes, on-demand scoring, fatal load errors and stop. Pure
Python: no DDS."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from node_harness import SEC, TASK, frame, wait_until

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.engine import EngineConfig, Sample
from robo_dopamine_ros.core.errors import ModelLoadError
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.core.result import StepResult
from robo_dopamine_ros.core.types import Answer, Query
from robo_dopamine_ros.pipeline.worker import EventKind, InferenceWorker, QueuedSample, WorkerEvent


class GatedBackend(ScriptedBackend):
    """Blocks each ``generate`` (after warm-up) until the test releases it or stop is asked."""

    def __init__(self, script: Callable[[Query], str] | None = None) -> None:
        super().__init__(*(() if script is None else (script,)))
        self.gated = False
        self.entered = threading.Semaphore(0)
        self.gate = threading.Semaphore(0)

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        if self.gated:
            self.entered.release()
            assert self.gate.acquire(timeout=30), 'the test never released the gate'
        return super().generate(queries)

    def request_stop(self) -> None:
        super().request_stop()
        self.gate.release()

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=30), 'no generate call started'


class Recorder:
    """What the worker reported, safe to read while it runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: list[tuple[StepResult, str]] = []
        self.events: list[WorkerEvent] = []
        self.fatal: list[BaseException] = []

    def result(self, result: StepResult, frame_id: str) -> None:
        with self.lock:
            self.results.append((result, frame_id))

    def event(self, event: WorkerEvent) -> None:
        with self.lock:
            self.events.append(event)

    def kinds(self) -> list[EventKind]:
        with self.lock:
            return [e.kind for e in self.events]

    def scored(self) -> list[tuple[str, int, int]]:
        """(episode id, step, stamp in s) of every result so far."""
        with self.lock:
            return [(r.episode_id, r.step, r.stamp_after_ns // SEC) for r, _ in self.results]


GOAL = frame(999)


def item(t: int) -> QueuedSample:
    sample = Sample(t * SEC, *[frame(t * 3 + i) for i in range(3)])
    return QueuedSample(sample.stamp_ns, f'frame-{t}', lambda: sample)


def make_worker(make_backend: Callable[[], Any], *, task: str = TASK,
                goal: np.ndarray | None = GOAL,
                activate: bool = True) -> tuple[InferenceWorker, Recorder]:
    """A started worker (loaded, as after ``configure``), activated unless told otherwise."""
    rec = Recorder()
    worker = InferenceWorker(make_backend, EngineConfig(), GRM_3B, task=task, goal=goal,
                             queue_length=2, logger=logging.getLogger('test'),
                             on_result=rec.result, on_event=rec.event,
                             on_fatal=rec.fatal.append)
    worker.start()
    if activate:
        worker.loaded.result(timeout=30)
        assert worker.activate().result(timeout=30).success
    return worker, rec


@pytest.fixture
def gated() -> GatedBackend:
    return GatedBackend()


def offer_and_submit(worker: InferenceWorker, t: int) -> None:
    ticket = worker.offer(t * SEC)
    assert ticket is not None, f'sample at {t} s was not due'
    worker.submit(ticket, item(t))


def test_worker_is_ready_after_warm_up_then_scores_due_samples() -> None:
    backend = ScriptedBackend()
    worker, rec = make_worker(lambda: backend)
    try:
        wait_until(lambda: worker.ready, 'ready')
        assert rec.kinds() == [EventKind.READY, EventKind.START]
        assert len(backend.batches) == 1 and len(backend.batches[0]) == 3   # the warm-up
        offer_and_submit(worker, 1)
        assert worker.offer(SEC + SEC // 2) is None                         # not due yet
        offer_and_submit(worker, 2)
        wait_until(lambda: len(rec.scored()) == 2, 'two results')
        assert rec.scored() == [('episode-0001', 0, 1), ('episode-0001', 1, 2)]
        assert [f for _, f in rec.results] == ['frame-1', 'frame-2']
    finally:
        assert worker.stop(5.0)


def test_worker_drops_the_oldest_pending_sample_when_the_queue_is_full(
        gated: GatedBackend) -> None:
    worker, rec = make_worker(lambda: gated)
    try:
        wait_until(lambda: worker.ready, 'ready')
        gated.gated = True
        offer_and_submit(worker, 1)         # START: no model call
        offer_and_submit(worker, 2)
        gated.wait_entered()                # step 2 is in the model
        for t in (3, 4, 5):                 # queue.length 2: 3 goes when 5 arrives
            offer_and_submit(worker, t)
        assert worker.counters() == {'dropped': 1, 'superseded': 0, 'rejected': 0,
                                     'not_ready': 0, 'paused': 0, 'no_episode': 0,
                                     'pending': 2, 'commands_pending': 0}
        for _ in range(3):
            gated.gate.release()
        wait_until(lambda: len(rec.scored()) == 4, 'four results')
        assert [s for _, _, s in rec.scored()] == [1, 2, 4, 5]
    finally:
        assert worker.stop(5.0)


def test_worker_reset_during_a_step_never_mixes_episodes(gated: GatedBackend) -> None:
    worker, rec = make_worker(lambda: gated)
    try:
        wait_until(lambda: worker.ready, 'ready')
        gated.gated = True
        offer_and_submit(worker, 1)
        offer_and_submit(worker, 2)
        gated.wait_entered()                        # step 2 of episode-0001 is in the model
        offer_and_submit(worker, 3)                 # pending: belongs to episode-0001
        late = worker.offer(4 * SEC)                # offered before the reset ...
        assert late is not None
        reset = worker.reset()
        worker.submit(late, item(4))                # ... submitted after it: superseded
        assert worker.offer(5 * SEC) is None        # no sampling while the reset is pending
        gated.gate.release()
        outcome = reset.result(timeout=30)
        assert outcome.success and outcome.episode_id == 'episode-0002'
        assert rec.scored() == [('episode-0001', 0, 1), ('episode-0001', 1, 2)]
        reset_event = rec.events[-2]
        assert (reset_event.kind, reset_event.episode_id, reset_event.previous_episode_id) == (
            EventKind.RESET, 'episode-0002', 'episode-0001')
        assert rec.kinds()[-1] is EventKind.START
        assert worker.counters()['superseded'] == 2
        offer_and_submit(worker, 6)                 # the new episode's START sample
        wait_until(lambda: len(rec.scored()) == 3, 'the new episode START')
        assert rec.scored()[-1] == ('episode-0002', 0, 6)
    finally:
        assert worker.stop(5.0)


def test_worker_start_is_sent_once_samples_are_offered_again() -> None:
    """A client that answers START (or READY) with frames at once never finds the worker still
    paused by the command that sent it: each event's handler sees a due sample accepted."""
    due_at_event: list[tuple[EventKind, bool]] = []
    worker: InferenceWorker | None = None

    def on_event(event: WorkerEvent) -> None:
        rec.event(event)
        if worker is not None and event.kind in (EventKind.READY, EventKind.START):
            stamp = (1000 + 100 * len(due_at_event)) * SEC  # offering a stamp accepts it
            due_at_event.append((event.kind, worker.offer(stamp) is not None))

    worker, rec = make_worker(ScriptedBackend, activate=False)
    worker._on_event = on_event     # the handler needs the worker it reports on
    try:
        worker.loaded.result(timeout=30)
        assert worker.activate().result(timeout=30).success
        assert worker.reset().result(timeout=30).success
        assert due_at_event == [(EventKind.READY, True), (EventKind.START, True),
                                (EventKind.START, True)]
    finally:
        assert worker.stop(5.0)


def test_worker_task_and_goal_commands_open_episodes_only_when_complete() -> None:
    worker, rec = make_worker(ScriptedBackend, task='', goal=None)
    try:
        wait_until(lambda: worker.ready, 'ready')
        assert rec.kinds() == [EventKind.READY] and worker.offer(SEC) is None
        bad = worker.set_task('look at <image>').result(timeout=30)
        assert not bad.success and 'reserved marker' in bad.message
        waiting = worker.set_task(TASK).result(timeout=30)
        assert waiting.success and 'no episode yet' in waiting.message
        assert 'needs a goal image' in waiting.message and rec.kinds() == [EventKind.READY]
        started = worker.set_goal(frame(5), 'goal from a test').result(timeout=30)
        eid = started.episode_id
        assert started.success and eid.startswith('episode-') and worker.episode_id == eid
        assert rec.kinds() == [EventKind.READY, EventKind.START]   # no GOAL_CHANGED: no episode
        tiny = worker.set_goal(frame(6, (10, 10)), 'too small').result(timeout=30)
        assert not tiny.success and tiny.message.startswith('goal image rejected')
        assert tiny.episode_id == eid and worker.episode_id == eid
        renamed = worker.set_task('fold the towel', 'my-episode').result(timeout=30)
        assert renamed.success and renamed.episode_id == 'my-episode'
        changed = rec.events[-2]
        assert (changed.kind, changed.episode_id, changed.previous_episode_id,
                changed.task) == (EventKind.TASK_CHANGED, 'my-episode', eid, 'fold the towel')
    finally:
        assert worker.stop(5.0)


def test_worker_scores_on_demand_with_the_before_stamp_rules() -> None:
    worker, rec = make_worker(ScriptedBackend)
    try:
        wait_until(lambda: worker.ready, 'ready')

        def score(before_s: int, before: int | None, after: int) -> Any:
            future = worker.score(before_s * SEC, None if before is None else item(before),
                                  item(after), 50_000_000)
            return future.result(timeout=30)

        fresh = score(0, None, 2)
        assert not fresh.success and 'fresh episode needs before_stamp' in fresh.message
        missing = score(1, None, 2)
        assert not missing.success and 'no buffered sample' in missing.message
        first = score(1, 1, 2)
        assert first.success and first.result is not None and first.result.step == 1
        wrong = score(1, None, 3)
        assert not wrong.success and 'is not the last sample this episode scored' in wrong.message
        assert score(2, None, 3).result.step == 2
        assert score(0, None, 4).result.step == 3         # 0: whatever was scored last
        back = score(0, None, 4)
        assert not back.success and 'does not increase' in back.message
        assert rec.scored() == [('episode-0001', step, step + 1) for step in range(4)]
    finally:
        assert worker.stop(5.0)


def test_worker_emits_done_once_at_the_first_success() -> None:
    worker, rec = make_worker(lambda: ScriptedBackend(lambda q: '<score>+100%</score>'))
    try:
        wait_until(lambda: worker.ready, 'ready')
        for t in (1, 2, 3):                 # one at a time: the queue holds only two
            offer_and_submit(worker, t)
            wait_until(lambda t=t: len(rec.scored()) == t, f'result {t}')
        done = [e for e in rec.events if e.kind is EventKind.DONE]
        assert len(done) == 1 and done[0].stamp_ns == 2 * SEC
        assert done[0].episode_id == 'episode-0001'
    finally:
        assert worker.stop(5.0)


def test_worker_load_failure_is_reported_to_configure_and_nothing_becomes_ready() -> None:
    def fail() -> ScriptedBackend:
        raise ModelLoadError('model directory does not exist')

    worker, rec = make_worker(fail, activate=False)
    try:
        with pytest.raises(ModelLoadError, match='does not exist'):
            worker.loaded.result(timeout=30)
        assert rec.kinds() == [] and not worker.ready and rec.fatal == []
        outcome = worker.reset().result(timeout=30)
        assert not outcome.success and outcome.message == 'the node is shutting down'
    finally:
        assert worker.stop(5.0)


def test_worker_deactivate_cancels_the_step_in_flight_and_publishes_nothing_of_it(
        gated: GatedBackend) -> None:
    worker, rec = make_worker(lambda: gated)
    try:
        gated.gated = True
        offer_and_submit(worker, 1)         # START: no model call
        offer_and_submit(worker, 2)
        gated.wait_entered()                # step 2 is in the model
        done = worker.deactivate(release=False)
        assert not worker.ready and worker.offer(3 * SEC) is None
        gated.gate.release()                # the cancelled call returns; its result is dropped
        assert done.result(timeout=30).success
        assert rec.scored() == [('episode-0001', 0, 1)]
        assert worker.backend is gated      # kept loaded
        gated.gated = False
        assert worker.activate().result(timeout=30).success
        assert rec.kinds()[-2:] == [EventKind.READY, EventKind.START]
        assert worker.episode_id == 'episode-0002'      # a new episode, ids never repeat
        offer_and_submit(worker, 5)
        wait_until(lambda: len(rec.scored()) == 2, 'the new episode START')
    finally:
        assert worker.stop(5.0)


def test_worker_release_on_deactivate_frees_the_model_and_activate_reloads_it() -> None:
    built: list[ScriptedBackend] = []

    def build() -> ScriptedBackend:
        built.append(ScriptedBackend())
        return built[-1]

    worker, rec = make_worker(build)
    try:
        first = weakref.ref(built[0])
        assert worker.deactivate(release=True).result(timeout=30).success
        assert worker.backend is None
        built.clear()
        gc.collect()
        assert first() is None, 'the released model is still referenced'
        assert worker.activate().result(timeout=30).success and worker.backend is built[0]
        offer_and_submit(worker, 1)
        wait_until(lambda: len(rec.scored()) == 1, 'a score from the reloaded model')
    finally:
        assert worker.stop(5.0)


def test_worker_stop_interrupts_the_model_and_publishes_nothing_after(
        gated: GatedBackend) -> None:
    worker, rec = make_worker(lambda: gated)
    wait_until(lambda: worker.ready, 'ready')
    gated.gated = True
    offer_and_submit(worker, 1)
    offer_and_submit(worker, 2)
    gated.wait_entered()
    pending = worker.reset()
    assert worker.stop(5.0)                 # request_stop released the model call
    assert gated._stopped and not gated.batches          # stopped, then closed
    assert rec.scored() == [('episode-0001', 0, 1)]        # step 2 was not published
    assert not pending.result(timeout=5).success and rec.fatal == []
    assert worker.offer(3 * SEC) is None
