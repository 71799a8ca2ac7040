"""From hops to progress: the three readings, their fusion, the consistency check and validity.

Readings (docs/upstream.md §4.1 / paper Eq. 4-7), for a hop ``H`` in [-1, 1]:

* incremental: ``Φ_I = Φ_prev + (1 - Φ_prev)·H`` if ``H >= 0`` else ``Φ_prev + Φ_prev·H``
* forward-anchored (BEFORE = episode start): ``Φ_F = H``
* backward-anchored (BEFORE = goal): ``Φ_B = 1 + H``

Two fusion methods:

* ``PAPER`` (default, Eq. 4-8): the incremental reading is re-based on the *fused* previous value
  (this is what counteracts drift); ``Φ* = mean`` of the usable readings; every published value
  is clamped to [0, 1] and the unclamped value kept as ``*_raw``.
* ``UPSTREAM`` (parity with upstream per-mode outputs): every mode chains on its own previous
  value, incremental uses upstream's first-step rule ``p = H``, nothing is clamped in ``*_raw``.

Consistency check (Eq. 9-11, optional, PAPER only): ``Φ̄ = (Φ_F + Φ_B)/2``,
``Δ = |Φ_B - Φ_F| / (Φ̄ + ε)``, ``w = exp(-α·Δ²)`` and
``Φ* = Φ_prev + (w/2)·(Φ̄ - Φ_prev + ΔΦ_I)``. The paper does not give ε; we fix
``CONSISTENCY_EPS = 0.1``: with a tiny ε, near the episode start (Φ̄ ≈ 0) any small absolute
disagreement (F = 0.02, B = 0) gives Δ ≈ 2 and w ≈ e^-80, freezing progress at 0. With ε = 0.1
disagreement is judged relative to at least 10 % progress (that example gives w ≈ 0.52).

Validity rule for a step (written once, here):

* every requested reading usable -> ``ok``, valid;
* some usable -> ``partial``: fused from the usable ones, the state advances, **not valid**;
* none usable -> ``held``: the previous progress is repeated, the state does not advance,
  **not valid**;
* an upstream-zeroed reading (parity option) -> ``zeroed``, **not valid**.
A ``LENIENT`` reading counts as usable when ``accept_lenient`` (default) and as failed otherwise;
its per-mode parse status always shows it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError, coerce_enum
from .parsing import ParseStatus, ScoreReading
from .types import ALL_MODES, Mode

CONSISTENCY_EPS = 0.1
DEFAULT_ALPHA = 20.0


class FusionMethod(str, enum.Enum):
    """How per-mode readings combine; see the module docstring."""

    PAPER = 'paper'
    UPSTREAM = 'upstream'


class StepStatus(str, enum.Enum):
    """Outcome of the validity rule for one step."""

    OK = 'ok'
    PARTIAL = 'partial'
    HELD = 'held'
    ZEROED = 'zeroed'


@dataclass(frozen=True)
class FusionConfig:
    """Which readings are requested and how they are fused."""

    modes: tuple[Mode, ...] = ALL_MODES
    method: FusionMethod = FusionMethod.PAPER
    consistency: bool = False
    alpha: float = DEFAULT_ALPHA
    accept_lenient: bool = True

    def __post_init__(self) -> None:
        if not self.modes:
            raise ConfigError('at least one mode must be requested')
        if len(set(self.modes)) != len(self.modes):
            raise ConfigError(f'modes must not repeat, got {self.modes!r}')
        try:
            object.__setattr__(self, 'modes', tuple(Mode(m) for m in self.modes))
        except ValueError:
            raise ConfigError(f'modes must be among {[m.value for m in Mode]}, '
                              f'got {self.modes!r}') from None
        coerce_enum(self, 'method', FusionMethod)
        if self.alpha <= 0:
            raise ConfigError(f'consistency alpha must be > 0, got {self.alpha!r}')
        if self.consistency and self.method is not FusionMethod.PAPER:
            raise ConfigError('the consistency check applies to the paper fusion only')
        if self.consistency and not {Mode.FORWARD, Mode.BACKWARD} <= set(self.modes):
            raise ConfigError('the consistency check needs the forward and backward modes')


@dataclass(frozen=True)
class ModeReading:
    """One mode's reading at a step: the parsed hop and the progress it implies."""

    mode: Mode
    score: ScoreReading
    progress: float | None = None
    progress_raw: float | None = None


@dataclass(frozen=True)
class ProgressState:
    """What carries from one step to the next (immutable; each step returns a new one)."""

    fused: float = 0.0
    fused_raw: float = 0.0
    mode_prev: Mapping[Mode, float] = field(default_factory=dict)
    transitions: int = 0


@dataclass(frozen=True)
class FusedStep:
    """Result of fusing one step's readings."""

    readings: tuple[ModeReading, ...]
    progress: float
    progress_raw: float
    consistency_weight: float | None
    status: StepStatus
    reason: str
    state: ProgressState

    @property
    def valid(self) -> bool:
        return self.status is StepStatus.OK

    def reading(self, mode: Mode) -> ModeReading:
        return next(r for r in self.readings if r.mode is mode)


def clamp01(x: float) -> float:
    return min(1.0, max(0.0, x))


def incremental_update(prev: float, hop: float) -> float:
    """Invert a hop (paper Eq. 4-5): progress is relative to what remained or was achieved."""
    return prev + (1.0 - prev) * hop if hop >= 0 else prev + prev * hop


def forward_progress(hop: float) -> float:
    """Φ_F = H(start -> current)."""
    return hop


def backward_progress(hop: float) -> float:
    """Φ_B = 1 + H(goal -> current); the hop is normally <= 0."""
    return 1.0 + hop


def consistency_weight(phi_f: float, phi_b: float, alpha: float = DEFAULT_ALPHA,
                       eps: float = CONSISTENCY_EPS) -> float:
    """w = exp(-α·Δ²), Δ = |Φ_B - Φ_F| / (Φ̄ + ε) (paper Eq. 9-10)."""
    mean = (phi_f + phi_b) / 2.0
    delta = abs(phi_b - phi_f) / (mean + eps)
    return math.exp(-alpha * delta * delta)


def _usable(score: ScoreReading, accept_lenient: bool) -> bool:
    if not score.usable:
        return False
    return accept_lenient or score.status is not ParseStatus.LENIENT


def _mode_value(mode: Mode, prev: float, hop: float, first: bool, method: FusionMethod) -> float:
    if mode is Mode.FORWARD:
        return forward_progress(hop)
    if mode is Mode.BACKWARD:
        return backward_progress(hop)
    if method is FusionMethod.UPSTREAM and first:
        return hop                      # upstream's step-0 rule: p = s, even for s < 0
    return incremental_update(prev, hop)


def fuse_step(state: ProgressState, scores: Mapping[Mode, ScoreReading],
              config: FusionConfig) -> FusedStep:
    """Fuse one transition's readings into progress, applying the validity rule.

    Args:
        state: The state after the previous step (``ProgressState()`` at the episode start).
        scores: The parsed answer of each requested mode.
        config: Requested modes and fusion method.

    Returns:
        The per-mode readings (unrequested modes as ``SKIPPED``), the fused progress and the
        next state.
    """
    first = state.transitions == 0
    readings: list[ModeReading] = []
    values: dict[Mode, tuple[float, float]] = {}      # mode -> (clamped, raw)
    missing: list[str] = []
    why = ''        # the first unusable reading's reason (a parse failure, a backend error)
    zeroed: list[str] = []
    lenient: list[str] = []
    for mode in ALL_MODES:
        if mode not in config.modes:
            readings.append(ModeReading(mode, ScoreReading('', ParseStatus.SKIPPED)))
            continue
        score = scores.get(mode) or ScoreReading('', ParseStatus.FAILED, reason='no answer')
        if not _usable(score, config.accept_lenient):
            readings.append(ModeReading(mode, score))
            missing.append(mode.value)
            why = why or score.reason
            continue
        assert score.hop is not None and score.hop_raw is not None
        if config.method is FusionMethod.UPSTREAM:
            prev = state.mode_prev.get(mode, 0.0)
            raw = _mode_value(mode, prev, score.hop, first, config.method)
            value = clamp01(raw)
        else:
            raw = _mode_value(mode, state.fused, score.hop_raw, first, config.method)
            value = clamp01(_mode_value(mode, state.fused, score.hop, first, config.method))
        values[mode] = (value, raw)
        readings.append(ModeReading(mode, score, value, raw))
        if score.status is ParseStatus.ZEROED:
            zeroed.append(mode.value)
        elif score.status is ParseStatus.LENIENT:
            lenient.append(mode.value)

    if not values:
        return FusedStep(tuple(readings), state.fused, state.fused_raw, None, StepStatus.HELD,
                         f'held previous progress: no usable reading ({", ".join(missing)})'
                         + (f': {why}' if why else ''),
                         state)

    progress = sum(v for v, _ in values.values()) / len(values)
    progress_raw = sum(r for _, r in values.values()) / len(values)
    weight: float | None = None
    if config.consistency and Mode.FORWARD in values and Mode.BACKWARD in values:
        phi_f, phi_b = values[Mode.FORWARD][0], values[Mode.BACKWARD][0]
        weight = consistency_weight(phi_f, phi_b, config.alpha)
        anchored = (phi_f + phi_b) / 2.0
        d_inc = values[Mode.INCREMENTAL][0] - state.fused if Mode.INCREMENTAL in values else 0.0
        progress = state.fused + weight / 2.0 * (anchored - state.fused + d_inc)
        progress_raw = progress
    progress = clamp01(progress)

    mode_prev = dict(state.mode_prev)
    mode_prev.update({m: raw for m, (_, raw) in values.items()})
    new_state = ProgressState(progress, progress_raw, mode_prev, state.transitions + 1)

    notes: list[str] = []
    if missing:
        status = StepStatus.PARTIAL
        notes.append(f'partial: fused {len(values)}/{len(config.modes)} readings, '
                     f'unusable: {", ".join(missing)}')
        if config.consistency and weight is None:
            notes.append('consistency check skipped')
    elif zeroed:
        status = StepStatus.ZEROED
    else:
        status = StepStatus.OK
    if zeroed:
        notes.append(f'upstream 0 substituted for unparseable {", ".join(zeroed)}')
    if lenient:
        notes.append(f'lenient parse: {", ".join(lenient)}')
    return FusedStep(tuple(readings), progress, progress_raw, weight, status, '; '.join(notes),
                     new_state)
