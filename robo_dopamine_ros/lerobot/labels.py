"""The relabelling's per-frame rows and what LeRobot reads of them.

One episode's rows (:func:`episode_rows`, the ``--out`` table): ``index``, ``episode_index``,
``frame_index``, ``scored``; ``progress`` Φ̂ (interpolated between samples,
:mod:`core.frame_rewards`); ``reward``, ``valid``, ``reason`` of the sample scored at that frame
(the engine's shaped reward of the transition ending there; 0 / null on unscored frames and at
START); and the frame's transition ``t -> t+1`` as a learner stepping every frame sees it:
``next_reward``, ``next_done``, ``next_success``, ``next_valid``.

From the merged rows: the dataset copy's features (:data:`COPY_FEATURES`, LeRobot's ``next.*``
keys as ``lerobot_eval`` declares them, plus ours) and the **progress sidecar**
(:func:`sidecar_table`) in the schema of LeRobot's reward models (SARM, Robometer
``compute_rabc_weights``): ``index``, ``episode_index``, ``frame_index``, ``progress_sparse``
(float32; Φ̂, every frame), the model in the schema metadata (``reward_model_path``), which
LeRobot's RA-BC sample weighting reads (``sample_weighting.progress_path``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.frame_rewards import ScoredFrame, frame_transitions, per_frame_gamma
from ..core.result import StepResult
from ..core.shaping import TerminalPotential
from .layout import FrameTable

COLUMNS = ('index', 'episode_index', 'frame_index', 'scored', 'progress', 'reward', 'valid',
           'reason', 'next_reward', 'next_done', 'next_success', 'next_valid')
#: Features of the dataset copy: key -> (source column, LeRobot feature entry).
COPY_FEATURES: dict[str, tuple[str, dict[str, Any]]] = {
    'next.reward': ('next_reward', {'dtype': 'float32', 'shape': [1], 'names': None}),
    'next.done': ('next_done', {'dtype': 'bool', 'shape': [1], 'names': None}),
    'next.success': ('next_success', {'dtype': 'bool', 'shape': [1], 'names': None}),
    'robo_dopamine.reward_valid': ('next_valid', {'dtype': 'bool', 'shape': [1],
                                                  'names': None}),
    'robo_dopamine.progress': ('progress', {'dtype': 'float32', 'shape': [1], 'names': None}),
}
#: Schema metadata key of the model in LeRobot's progress files.
MODEL_KEY = b'reward_model_path'


def episode_rows(episode: int, frames: FrameTable, results: Mapping[int, StepResult],
                 fps: float, terminal_potential: TerminalPotential) -> Any:
    """One episode's rows (module docstring) from its frames and the results by frame."""
    import pyarrow as pa

    n = len(frames.index)
    samples = [_scored(i, results[i], fps) for i in sorted(results)]
    t = frame_transitions(n, samples, terminal_potential)
    return pa.table({
        'index': pa.array(frames.index, pa.int64()),
        'episode_index': pa.array([episode] * n, pa.int64()),
        'frame_index': pa.array(frames.frame_index, pa.int64()),
        'scored': pa.array([i in results for i in range(n)]),
        'progress': pa.array(t.progress, pa.float64()),
        'reward': pa.array([_reward(results.get(i)) for i in range(n)], pa.float64()),
        'valid': pa.array([results[i].valid if i in results else None for i in range(n)],
                          pa.bool_()),
        'reason': pa.array([results[i].reason if i in results else None for i in range(n)],
                           pa.string()),
        'next_reward': pa.array(t.reward, pa.float64()),
        'next_done': pa.array(t.done),
        'next_success': pa.array(t.success),
        'next_valid': pa.array(t.valid),
    })


def copy_labels(rows: Any) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The copy's label table (``index``, ``episode_index``, one column per feature key in its
    dtype) and the feature entries for ``meta/info.json``."""
    import pyarrow as pa

    columns = {'index': rows.column('index'), 'episode_index': rows.column('episode_index')}
    for key, (source, feature) in COPY_FEATURES.items():
        columns[key] = rows.column(source).cast(pa.float32() if feature['dtype'] == 'float32'
                                                 else pa.bool_())
    return pa.table(columns), {key: feature for key, (_, feature) in COPY_FEATURES.items()}


def sidecar_table(rows: Any, model: str, settings: bytes) -> Any:
    """The progress sidecar (module docstring); our settings ride along in the metadata."""
    import pyarrow as pa

    table = pa.table({name: rows.column(name)
                      for name in ('index', 'episode_index', 'frame_index')})
    table = table.append_column('progress_sparse', rows.column('progress').cast(pa.float32()))
    return table.replace_schema_metadata({MODEL_KEY: model.encode(), b'robo_dopamine': settings})


def _scored(frame: int, result: StepResult, fps: float) -> ScoredFrame:
    shaped = result.reward
    if shaped is None or result.stamp_before_ns is None:         # the START sample
        return ScoredFrame(frame, result.progress, result.valid)
    span_s = (result.stamp_after_ns - result.stamp_before_ns) / 1e9
    return ScoredFrame(frame, result.progress, result.valid,
                       per_frame_gamma(shaped.gamma, span_s, 1.0 / fps), shaped.phase)


def _reward(result: StepResult | None) -> float:
    """A scored frame's reward: its sample's shaped reward; 0 unscored and at START."""
    return result.reward.reward if result is not None and result.reward is not None else 0.0

