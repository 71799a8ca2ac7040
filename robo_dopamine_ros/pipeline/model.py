"""The model's state machine: the one owner of the backend, its loading, release and cancellation.

The worker thread loads and calls the model; the node's transitions (other threads) deactivate,
cancel a load in flight and stop. Every change goes through :meth:`ModelSlot._to`, which checks
:data:`TRANSITIONS`, so no state hides in ``None``s::

    EMPTY --load--> LOADING --warmed up--> LOADED --activate--> ACTIVE
      ^               |  (failed or cancelled:  ^                   |
      |               |   what it built is      +---deactivate------+
      +---------------+   closed)
      +----------------release------------- LOADED
    any state --close--> CLOSED (terminal)

Rules: a failed or cancelled load closes what it built before the slot leaves LOADING, so a
retry never finds a half-loaded backend; only LOADED and ACTIVE hold a backend; ACTIVE is the
only state in which the engine is given the backend.

Cancellation of a model call is per call: the worker marks a step as underway
(:meth:`ModelSlot.generate` through the engine) and a deactivate cancels the backend only while one
is, so a cancel landing between dequeue and ``generate`` reaches that call (the transformers
backend keeps the flag until the call it stopped ends). A call interrupted by a cancel that
was meant for an earlier step (a flag left over) is run again.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..core.errors import BackendError, BackendStoppedError, GrmError
from ..core.images import blank_goal, prepare
from ..core.profiles import CheckpointProfile
from ..core.prompt import NUM_IMAGES
from ..core.types import ALL_MODES, Answer, GrmBackend, ImageKey, KeyedImage, Query

#: The task text of the warm-up query (a served model sees it too).
WARM_UP_TASK = 'warm up'


class ModelState(enum.Enum):
    """Where the model is; mirrored on the node's lifecycle (LOADED = inactive)."""

    EMPTY = 'empty'         # nothing loaded (before configure, after release or a failed load)
    LOADING = 'loading'     # being built and warmed up (cancellable)
    LOADED = 'loaded'       # resident, not scoring (inactive)
    ACTIVE = 'active'       # resident and scoring
    CLOSED = 'closed'       # the worker has stopped; terminal


#: The allowed transitions; anything else is a bug and raises.
TRANSITIONS: dict[ModelState, frozenset[ModelState]] = {
    ModelState.EMPTY: frozenset({ModelState.LOADING, ModelState.CLOSED}),
    ModelState.LOADING: frozenset({ModelState.LOADED, ModelState.EMPTY, ModelState.CLOSED}),
    ModelState.LOADED: frozenset({ModelState.ACTIVE, ModelState.EMPTY, ModelState.CLOSED}),
    ModelState.ACTIVE: frozenset({ModelState.LOADED, ModelState.CLOSED}),
    ModelState.CLOSED: frozenset(),
}


class LoadCancelledError(BackendStoppedError):
    """A load in flight was cancelled (a transition's bound passed, a deactivate, stop)."""


class Logger(Protocol):
    """The logging calls the worker makes (an rclpy logger or a ``logging.Logger``)."""

    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...


def warm_up(backend: GrmBackend, profile: CheckpointProfile) -> None:
    """One batched dummy query as large as a real step's, so the first real step is not slow.

    The first call pays one-time costs (CUDA kernels, allocator growth, lazy imports); paying
    them before READY keeps the first rewards' latency honest.

    Raises:
        BackendError: The backend cannot answer at all, or answered the warm-up with errors.
    """
    image = KeyedImage(ImageKey('warm-up', 'blank', 0),
                       prepare(blank_goal(), profile.pixel_limits))
    answers = backend.generate([Query(WARM_UP_TASK, (image,) * NUM_IMAGES, mode,
                                      profile.prompt_variant) for mode in ALL_MODES])
    failed = [a.error for a in answers if a.error]
    if failed:      # e.g. a served model that is unreachable: nothing could be scored
        raise BackendError(f'warm-up failed: {failed[0]}')


class ModelSlot:
    """Owns the backend; see the module docstring for the states and rules.

    ``lock`` is the worker's condition: state changes notify it. The engine is given this slot
    as its backend (``generate``, ``model_id``), never the backend itself.
    """

    def __init__(self, make_backend: Callable[[], GrmBackend], profile: CheckpointProfile,
                 lock: threading.Condition, logger: Logger, retry_s: float = 0.0) -> None:
        self._make_backend = make_backend
        self._profile = profile
        self._lock = lock
        self._log = logger
        self._retry_s = retry_s
        self._state = ModelState.EMPTY
        self._backend: GrmBackend | None = None
        self._loading: GrmBackend | None = None     # built, not yet warmed up
        self._cancel_load = threading.Event()
        self._in_call = False
        self._call_cancelled = False
        self._stopped = False
        self.load_error = ''    # why the last load attempt failed while retrying ('' otherwise)

    # -- state, read from any thread -----------------------------------------------------------

    @property
    def state(self) -> ModelState:
        with self._lock:
            return self._state

    @property
    def backend(self) -> GrmBackend | None:
        """The resident backend (LOADED or ACTIVE), else None."""
        with self._lock:
            return self._backend

    @property
    def model_id(self) -> str:
        backend = self.backend
        return backend.model_id if backend is not None else ''

    def _to(self, new: ModelState, backend: GrmBackend | None = None) -> GrmBackend | None:
        """Change state (lock held by the caller or taken here); returns a backend to close."""
        with self._lock:
            if new not in TRANSITIONS[self._state]:
                raise RuntimeError(f'model state {self._state.value} -> {new.value} is not a '
                                   'transition')
            self._state = new
            released = None
            if new is ModelState.LOADED and backend is not None:
                self._backend = backend
            elif new in (ModelState.EMPTY, ModelState.CLOSED):
                released, self._backend = self._backend, None
            self._lock.notify_all()
            return released

    # -- loading (worker thread) ---------------------------------------------------------------

    def load(self) -> str:
        """EMPTY -> LOADING -> LOADED: build and warm up; returns the model id.

        With ``retry_s`` a failure is retried until it loads or the load is cancelled (a GPU
        server that comes up later). A failed or cancelled attempt closes what it built.

        Raises:
            GrmError: The load failed (no retry) or was cancelled (:class:`LoadCancelledError`).
        """
        with self._lock:
            if self._stopped:
                raise LoadCancelledError('the worker is stopping')
            self._cancel_load.clear()
            self._to(ModelState.LOADING)
        while True:
            try:
                backend = self._load_once()
            except GrmError as err:
                if isinstance(err, LoadCancelledError) or not self._retry_s:
                    self._to(ModelState.EMPTY)
                    raise
                self._log.warning(f'model not ready ({err}); retrying in {self._retry_s:g} s')
                with self._lock:
                    self.load_error = str(err)
                if self._cancel_load.wait(self._retry_s):
                    self._to(ModelState.EMPTY)
                    raise LoadCancelledError(f'the load was cancelled (last error: {err})'
                                             ) from None
                continue
            except BaseException:
                self._to(ModelState.EMPTY)
                raise
            with self._lock:
                self.load_error = ''
                self._to(ModelState.LOADED, backend)
            return backend.model_id

    def _load_once(self) -> GrmBackend:
        backend = self._make_backend()
        try:
            with self._lock:
                self._loading = backend         # from now on cancel_load() can interrupt it
                if self._cancel_load.is_set():
                    raise LoadCancelledError('the load was cancelled')
            warm_up(backend, self._profile)
            if self._cancel_load.is_set():      # warmed up just as the cancel came
                raise LoadCancelledError('the load was cancelled')
        except BaseException as err:
            with self._lock:
                self._loading = None
            backend.close()     # a failed load frees what it loaded, and the error (kept by
            del backend         # configure) must not keep it: its traceback holds this frame
            if isinstance(err, GrmError):       # an expected error keeps no loader frames
                raise err.with_traceback(None) from None
            raise
        with self._lock:
            self._loading = None
        return backend

    def cancel_load(self) -> None:
        """Cancel a load in flight (any thread): it ends in EMPTY, what it built closed.

        A no-op in any other state: no cancel is left over for a later load.
        """
        with self._lock:
            if self._state is not ModelState.LOADING:
                return
            self._cancel_load.set()
            building = self._loading
        if building is not None:
            building.request_stop()     # sticky, but this backend is closed anyway

    # -- activity ------------------------------------------------------------------------------

    def activate(self) -> None:
        """LOADED -> ACTIVE."""
        self._to(ModelState.ACTIVE)

    def deactivate(self) -> None:
        """ACTIVE -> LOADED (any thread); cancels the model call underway, if any."""
        with self._lock:
            if self._state is ModelState.ACTIVE:
                self._to(ModelState.LOADED)
        self.cancel()

    def cancel(self) -> None:
        """Cancel the model call underway (from dequeue to the end of ``generate``), if any."""
        with self._lock:
            backend = self._backend if self._in_call else None
            if backend is not None:
                self._call_cancelled = True
        if backend is not None:
            backend.cancel()

    def release(self) -> None:
        """LOADED -> EMPTY: close the backend (its memory goes back to the system or GPU)."""
        with self._lock:
            backend = self._to(ModelState.EMPTY) if self._state is ModelState.LOADED else None
        if backend is not None:
            backend.close()

    def close(self) -> None:
        """Any state -> CLOSED (the worker thread's end): close whatever is held."""
        with self._lock:
            backend = (None if self._state is ModelState.CLOSED
                       else self._to(ModelState.CLOSED))
        if backend is not None:
            backend.close()

    def request_stop(self) -> None:
        """Interrupt a load or a model call for good (shutdown; any thread)."""
        with self._lock:
            self._stopped = True
        self.cancel_load()
        backend = self.backend
        if backend is not None:
            backend.request_stop()

    # -- the engine's backend (worker thread) --------------------------------------------------

    def generate(self, queries: Sequence[Query]) -> list[Answer]:
        """The resident backend's ``generate``, cancellable per call by :meth:`deactivate`.

        Raises:
            BackendStoppedError: Deactivated (or stopped) before or during the call.
        """
        with self._lock:
            backend = self._backend
            if self._state is not ModelState.ACTIVE or backend is None:
                raise BackendStoppedError(f'the model is {self._state.value}')
            self._in_call, self._call_cancelled = True, False
        try:
            while True:
                try:
                    return backend.generate(queries)
                except BackendStoppedError:
                    with self._lock:
                        stale = (self._state is ModelState.ACTIVE and not self._stopped
                                 and not self._call_cancelled)
                    if not stale:
                        raise
        finally:
            with self._lock:
                self._in_call = False
