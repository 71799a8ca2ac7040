"""Task monitor: is the task done, stuck or going backwards? One status per scored sample.

Teleop and data-collection tools need a verdict, not a curve, and a noisy progress estimate must
not make that verdict flicker. The monitor therefore reads the *fused* progress of the valid
samples only (an invalid sample holds the status and counts towards no window) and changes
status only on sustained evidence (hysteresis). Samples are counted in scored samples, so the
windows scale with the sampling interval (default 1 s: ``stall_window=8`` is 8 s).

Statuses, checked in this order at every valid sample (``best`` = the highest progress since
the episode start or the last recovery, ``threshold`` = ``1 - delta`` of the reward shaping):

* ``REGRESSING``: progress is at least ``regress_drop`` below ``best`` on ``regress_samples``
  consecutive samples. It is left (to ``RUNNING``, ``best`` re-anchored at the current value)
  only once progress rises ``recover_gain`` above its lowest value since the drop, so a dropped
  value that hovers stays ``REGRESSING``.
* ``SUCCEEDED``: progress >= ``threshold`` on ``success_samples`` consecutive samples. Sticky:
  only a regression ends it. It never changes the reward's ``done``/``terminal`` (those latch at
  the first sample over the threshold, as the paper defines).
* ``STALLED``: ``best`` rose by less than ``stall_min_gain`` over the last ``stall_window``
  samples (a new high of at least that much ends it at once).
* ``RUNNING``: otherwise (also until a window is full).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field, fields

from .errors import ConfigError


class TaskStatus(str, enum.Enum):
    """The monitor's verdict for one sample (``Progress.task_status``)."""

    RUNNING = 'running'
    SUCCEEDED = 'succeeded'
    STALLED = 'stalled'
    REGRESSING = 'regressing'


def _doc(text: str, minimum: float, maximum: float | None = None) -> dict[str, object]:
    """Field metadata: the description and inclusive bounds the node's parameters and the
    command line take from here (one table)."""
    return {'doc': text, 'minimum': minimum, 'maximum': maximum}


@dataclass(frozen=True)
class MonitorConfig:
    """The hysteresis parameters (see the module docstring); counts are valid scored samples."""

    success_samples: int = field(default=2, metadata=_doc(
        'SUCCEEDED after progress >= 1 - delta on this many consecutive samples', 1, 10000))
    stall_window: int = field(default=8, metadata=_doc(
        'STALLED when the best progress rose by less than stall_min_gain over this many '
        'samples', 2, 10000))
    stall_min_gain: float = field(default=0.05, metadata=_doc(
        'the smallest rise of the best progress that counts as progress', 0.0, 1.0))
    regress_drop: float = field(default=0.15, metadata=_doc(
        'REGRESSING when progress is this far below the best ...', 0.0, 1.0))
    regress_samples: int = field(default=2, metadata=_doc(
        '... on this many consecutive samples', 1, 10000))
    recover_gain: float = field(default=0.1, metadata=_doc(
        'REGRESSING ends when progress rises this much above its lowest value since the drop',
        0.0, 1.0))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low, high = f.metadata['minimum'], f.metadata['maximum']
            kind = int if f.type == 'int' else float
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    kind is int and not isinstance(value, int)):
                raise ConfigError(f'monitor {f.name} must be of type {kind.__name__}, '
                                  f'got {value!r}')
            if value < low or (high is not None and value > high):
                raise ConfigError(f'monitor {f.name} must be in [{low:g}, {high:g}], '
                                  f'got {value!r}')
            object.__setattr__(self, f.name, kind(value))
        if self.regress_drop <= 0:
            raise ConfigError(f'monitor regress_drop must be > 0, got {self.regress_drop!r}')


@dataclass(frozen=True)
class MonitorUpdate:
    """The status after one sample; ``event`` says why it changed at this sample ('' if not)."""

    status: TaskStatus
    event: str = ''

    @property
    def changed(self) -> bool:
        return bool(self.event)


class TaskMonitor:
    """The status of one episode, fed one fused progress value per scored sample."""

    def __init__(self, config: MonitorConfig, threshold: float, initial: float = 0.0) -> None:
        self.config = config
        self.threshold = threshold
        self.status = TaskStatus.RUNNING
        self._best = initial
        self._bests: deque[float] = deque([initial], maxlen=config.stall_window + 1)
        self._high = 0        # consecutive samples over the success threshold
        self._low = 0         # consecutive samples regress_drop below the best
        self._trough = initial

    def update(self, progress: float, valid: bool = True) -> MonitorUpdate:
        """Feed one sample's fused progress; an invalid one holds the status."""
        if not valid:
            return MonitorUpdate(self.status)
        cfg = self.config
        status, why = self.status, ''
        if status is TaskStatus.REGRESSING:
            self._trough = min(self._trough, progress)
            if progress < self._trough + cfg.recover_gain:
                return MonitorUpdate(status)
            why = f'recovered {progress - self._trough:.2f} from {self._trough:.2f}'
            self._best, self._low = progress, 0
            self._bests = deque([progress], maxlen=cfg.stall_window + 1)
            status = TaskStatus.RUNNING
        self._best = max(self._best, progress)
        self._bests.append(self._best)
        self._high = self._high + 1 if progress >= self.threshold else 0
        self._low = self._low + 1 if self._best - progress >= cfg.regress_drop else 0
        gain = self._bests[-1] - self._bests[0]
        if self._low >= cfg.regress_samples:
            status, self._trough = TaskStatus.REGRESSING, progress
            why = (f'progress {progress:.2f} is {self._best - progress:.2f} below the best '
                   f'{self._best:.2f} for {self._low} samples')
        elif self._high >= cfg.success_samples:
            status = TaskStatus.SUCCEEDED
            why = f'progress >= {self.threshold:.2f} for {self._high} samples'
        elif status is TaskStatus.SUCCEEDED:
            pass
        elif len(self._bests) > cfg.stall_window and gain < cfg.stall_min_gain:
            status = TaskStatus.STALLED
            why = (f'best progress rose {gain:.2f} (< {cfg.stall_min_gain:g}) over '
                   f'{cfg.stall_window} samples')
        else:
            status = TaskStatus.RUNNING
            why = why or f'best progress rose {gain:.2f}'
        changed = status is not self.status
        self.status = status
        return MonitorUpdate(status, f'{status.value}: {why}' if changed else '')
