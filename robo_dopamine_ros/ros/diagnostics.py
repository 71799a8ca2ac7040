"""Node health as counters, published as ``diagnostic_msgs/DiagnosticArray`` on /diagnostics.

What an operator needs to tell "the reward is wrong" from "the inputs are wrong": per-camera
input rate, staleness, bad frames and stamp problems; synchronizer and queue drops; model latency,
parse failures and invalid steps; a watchdog for a model stuck on one answer; readiness.
Counters are cumulative; a status turns WARN when a problem counter grew since the last report,
so one bad frame an hour ago does not keep a camera yellow.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from ..core.parsing import ParseStatus
from ..core.result import StepResult
from ..pipeline.input import StampProblem
from ..pipeline.params import CameraConfig

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
#: How the engine's reason starts for a reading the backend failed to answer (timeouts, HTTP).
BACKEND_ERROR = "backend error"
#: Steps whose latency the p50/p95 are computed over.
LATENCY_WINDOW = 100


@dataclass
class _Camera:
    config: CameraConfig
    frames: int = 0
    last_rx: float | None = None
    bad_frames: int = 0
    stamps: dict[StampProblem, int] = field(default_factory=lambda: dict.fromkeys(StampProblem, 0))

    def problems(self) -> int:
        return self.bad_frames + sum(self.stamps.values())


@dataclass(frozen=True)
class ModelInfo:
    """What the diagnostics say about the model (empty before it is loaded)."""

    model_id: str = ''
    device: str = ''
    episode_id: str = ''


def gpu_memory_gib(device: str) -> tuple[float, float] | None:
    """(allocated, reserved) GiB on a CUDA ``device`` if torch is already loaded, else None."""
    torch = sys.modules.get('torch')
    if torch is None or not device.startswith('cuda') or not torch.cuda.is_available():
        return None
    gib = 2**30
    return torch.cuda.memory_allocated(device) / gib, torch.cuda.memory_reserved(device) / gib


class NodeStats:
    """Thread-safe counters fed by the pipeline's input (it is its ``InputCounters``), the
    worker and the callbacks' boundaries; read by the timer."""

    def __init__(self, cameras: Sequence[CameraConfig], stale_after_s: float,
                 constant_output_steps: int, now: float) -> None:
        self._lock = threading.Lock()
        self._cameras = [_Camera(c) for c in cameras]
        self._stale_after = stale_after_s
        self._constant_steps = constant_output_steps
        self._started = now
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._steps = 0
        self._invalid = 0
        self._parse_failures = 0
        self._backend_errors = 0
        self._stale_sets = 0
        self._callback_errors = 0
        self._services_refused = 0
        self._last_answers: tuple[str, ...] | None = None
        self._same_answers = 0
        self._last_report = now
        self._reported: dict[str, int] = {}

    # -- input --------------------------------------------------------------------------------

    def frame(self, index: int, now: float) -> None:
        with self._lock:
            cam = self._cameras[index]
            cam.frames += 1
            cam.last_rx = now

    def bad_frame(self, index: int) -> None:
        with self._lock:
            self._cameras[index].bad_frames += 1

    def stamp_problem(self, index: int, problem: StampProblem) -> None:
        with self._lock:
            self._cameras[index].stamps[problem] += 1

    def stale_set(self) -> None:
        """A synchronized set held a frame older than ``stale_after_s``: it was not scored."""
        with self._lock:
            self._stale_sets += 1

    def callback_error(self) -> None:
        """An unexpected error was caught at a callback's boundary (the node stayed up)."""
        with self._lock:
            self._callback_errors += 1

    def service_refused(self) -> None:
        """A service call was refused because enough calls already wait for the worker."""
        with self._lock:
            self._services_refused += 1

    def result(self, result: StepResult) -> None:
        """Count a scored step; the START sample has no answers and no latency."""
        if result.is_start:
            return
        answers = tuple(r.score.text for r in result.readings
                        if r.score.status is not ParseStatus.SKIPPED)
        with self._lock:
            self._steps += 1
            self._invalid += not result.valid
            self._parse_failures += sum(r.score.status is ParseStatus.FAILED
                                        for r in result.readings)
            self._backend_errors += sum(r.score.reason.startswith(BACKEND_ERROR)
                                        for r in result.readings)
            self._latencies.append(result.latency_s)
            self._same_answers = self._same_answers + 1 if answers == self._last_answers else 1
            self._last_answers = answers

    # -- output -------------------------------------------------------------------------------

    def report(self, now: float, node_name: str, *, ready: bool, model: ModelInfo,
               sync: Mapping[str, int], worker: Mapping[str, int],
               state: str = '') -> list[DiagnosticStatus]:
        """One status for the model, one per camera, one for the pipeline; resets the deltas.

        ``state`` is the node's lifecycle state (shown while not ready).
        """
        with self._lock:
            elapsed = max(now - self._last_report, 1e-9)
            statuses = [self._model_status(node_name, ready, model, state)]
            statuses += [self._camera_status(node_name, c, now, elapsed) for c in self._cameras]
            statuses.append(self._pipeline_status(node_name, sync, worker, now))
            self._last_report = now
            return statuses

    def _grew(self, key: str, value: int) -> bool:
        """Did this counter grow since the last report? (Remembers the new value.)"""
        grew = value > self._reported.get(key, 0)
        self._reported[key] = value
        return grew

    def _stale(self, cam: _Camera, now: float) -> bool:
        last = self._started if cam.last_rx is None else cam.last_rx
        return now - last > self._stale_after

    def _model_status(self, node_name: str, ready: bool, model: ModelInfo,
                      state: str) -> DiagnosticStatus:
        lat = np.asarray(self._latencies, dtype=float)
        p50, p95 = np.percentile(lat, [50, 95]) if lat.size else (math.nan, math.nan)
        stuck = self._same_answers >= self._constant_steps
        values = {'ready': ready, 'model_id': model.model_id, 'device': model.device,
                  'episode_id': model.episode_id, 'steps': self._steps,
                  'invalid_steps': self._invalid, 'parse_failures': self._parse_failures,
                  'backend_errors': self._backend_errors,
                  'latency_p50_s': f'{p50:.4f}', 'latency_p95_s': f'{p95:.4f}',
                  'same_answer_steps': self._same_answers}
        memory = gpu_memory_gib(model.device)
        if memory is not None:
            values['gpu_allocated_gib'] = f'{memory[0]:.3f}'
            values['gpu_reserved_gib'] = f'{memory[1]:.3f}'
        if state:
            values['state'] = state
        if not ready:
            level, message = WARN, f'not scoring: {state}' if state else 'loading the model'
        elif stuck:
            level, message = WARN, (f'the model gave the same answer {self._same_answers} '
                                    'steps in a row')
        else:
            level, message = OK, 'ready'
        return _status(f'{node_name}: model', level, message, model.model_id, values)

    def _camera_status(self, node_name: str, cam: _Camera, now: float,
                       elapsed: float) -> DiagnosticStatus:
        key = f'camera:{cam.config.role}'
        rate = (cam.frames - self._reported.get(f'{key}:frames', 0)) / elapsed
        self._reported[f'{key}:frames'] = cam.frames
        age = math.nan if cam.last_rx is None else now - cam.last_rx
        stale = self._stale(cam, now)
        values = {'topic': cam.config.topic, 'transport': cam.config.transport.value,
                  'frames': cam.frames, 'rate_hz': f'{rate:.2f}', 'age_s': f'{age:.3f}',
                  'stale': stale, 'bad_frames': cam.bad_frames,
                  **{p.value: n for p, n in cam.stamps.items()}}
        if stale:
            level = WARN
            message = ('stale: no frame yet' if cam.last_rx is None else
                       f'stale: no frame for {age:.1f} s; its views are not scored')
        elif self._grew(f'{key}:problems', cam.problems()):
            level, message = WARN, 'bad frames or stamps since the last report'
        else:
            level, message = OK, f'{rate:.1f} Hz'
        return _status(f'{node_name}: camera {cam.config.role}', level, message,
                       cam.config.topic, values)

    def _pipeline_status(self, node_name: str, sync: Mapping[str, int],
                         worker: Mapping[str, int], now: float) -> DiagnosticStatus:
        values: dict[str, object] = {f'sync_{k}': v for k, v in sync.items()}
        values.update({f'queue_{k}': v for k, v in worker.items()})
        values['stale_sets'] = self._stale_sets
        values['callback_errors'] = self._callback_errors
        values['services_refused'] = self._services_refused
        stale = [c.config.role for c in self._cameras if self._stale(c, now)]
        errors = self._grew('callback_errors', self._callback_errors)
        dropped = self._grew('queue:dropped', worker.get('dropped', 0))
        if stale:
            level, message = WARN, f'stale camera(s) {", ".join(stale)}: nothing is scored'
        elif errors:
            level, message = WARN, 'unexpected errors in callbacks (see the log)'
        elif dropped:
            level, message = WARN, 'the model is slower than the sampling: samples dropped'
        else:
            level, message = OK, 'ok'
        return _status(f'{node_name}: pipeline', level, message, '', values)


def unconfigured_status(node_name: str, state: str, error: str) -> DiagnosticStatus:
    """The model status before ``configure`` succeeded: the state, and why it failed if it did."""
    return _status(f'{node_name}: model', ERROR if error else WARN,
                   f'{state}: {error}' if error else state, '',
                   {'ready': False, 'state': state, 'error': error})


def _status(name: str, level: bytes, message: str, hardware_id: str,
            values: Mapping[str, object]) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
