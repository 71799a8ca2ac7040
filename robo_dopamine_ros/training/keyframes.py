"""Episode annotations: sub-task keyframes, task paraphrases, and the frame sampling they drive.

The file formats are upstream's (docs/upstream.md §8.1): ``annotated_keyframes.json`` is a list of
``{"anotation": "subtask1", "start_frame_id": 8, "end_frame_id": 147}`` (sic "anotation";
consecutive segments share their boundary frame) and ``task_instruction.json`` a list of
paraphrases (or ``{"instructions": [...]}`` / ``{"instruction": "..."}``).

Upstream trusts both files; a typo there silently produces mislabelled training data (an
overlap makes progress run backwards, an end past the video drops frames). Here they are
validated and every problem is a ``ConfigError`` naming the file, the segment and the values.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.prompt import check_task

log = logging.getLogger(__name__)

#: Upstream's instruction when an episode has no ``task_instruction.json``.
DEFAULT_INSTRUCTION = 'perform the task'
#: Zero-hop AFTER frames sit this fraction of the local sampling window away (upstream 0.075).
ZERO_HOP_FRACTION = 0.075


@dataclass(frozen=True)
class Segment:
    """One annotated sub-task: frames ``start`` .. ``end`` (inclusive) of the episode."""

    start: int
    end: int
    name: str = ''

    def to_json(self) -> dict[str, Any]:
        """The upstream record (with upstream's key spelling, so its scripts read our files)."""
        return {'anotation': self.name, 'start_frame_id': self.start, 'end_frame_id': self.end}


def parse_keyframes(data: Any, num_frames: int, source: str) -> list[Segment]:
    """Validate upstream keyframe records against a video of ``num_frames`` frames.

    Args:
        data: The decoded JSON (a list of segment objects).
        num_frames: Frames per camera; every keyframe must be a frame that exists.
        source: Where ``data`` came from, for error messages.

    Raises:
        ConfigError: Not a non-empty list of objects with integer frame ids; a segment that is
            empty or reversed, outside ``[0, num_frames - 1]``, or overlapping the previous one
            (segments must be in time order; sharing a boundary frame is fine).
    """
    if not isinstance(data, list) or not data:
        raise ConfigError(f'{source}: keyframes must be a non-empty JSON list of segments, '
                          f'got {_excerpt(data)!r}')
    segments: list[Segment] = []
    for k, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise ConfigError(f'{source}: segment {k} must be an object, got {_excerpt(item)!r}')
        ids = [item.get(key) for key in ('start_frame_id', 'end_frame_id')]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
            raise ConfigError(f'{source}: segment {k} needs integer start_frame_id and '
                              f'end_frame_id, got {_excerpt(item)!r}')
        seg = Segment(ids[0], ids[1], str(item.get('anotation', item.get('annotation', ''))))
        label = f'{source}: segment {k} ({seg.name!r}, frames {seg.start}..{seg.end})'
        if seg.end <= seg.start:
            raise ConfigError(f'{label} is empty or reversed: end_frame_id must be greater '
                              'than start_frame_id')
        if seg.start < 0 or seg.end > num_frames - 1:
            raise ConfigError(f'{label} is out of range: the video has {num_frames} frames, '
                              f'so frame ids must lie in [0, {num_frames - 1}]')
        if segments and seg.start < segments[-1].end:
            prev = segments[-1]
            raise ConfigError(f'{label} overlaps segment {k - 1} ({prev.name!r}, frames '
                              f'{prev.start}..{prev.end}): segments must be in time order '
                              'and may share only their boundary frame')
        segments.append(seg)
    return segments


def load_keyframes(path: Path, num_frames: int) -> list[Segment]:
    """Read and validate ``annotated_keyframes.json``; without the file, one whole-video segment.

    Upstream's default segment ends one past the last frame, which its range filter then drops;
    ours ends at the last frame, so REF END is the episode's final frame.

    Raises:
        ConfigError: The file is not JSON or fails :func:`parse_keyframes`.
    """
    if not path.is_file():
        log.warning('%s not found: using one segment over all %d frames', path, num_frames)
        return [Segment(0, num_frames - 1, 'default_task')]
    return parse_keyframes(read_json(path), num_frames, str(path))


def sample_frame_ids(segments: Sequence[Segment], sample_factor: int) -> list[int]:
    """Upstream step 0's frame ids: ``m + 1`` evenly spaced points per segment.

    ``m = round((last end - first start) / sample_factor / #segments)`` (at least 1), so every
    sub-task gets the same number of points whatever its duration (the paper's step-wise
    discretisation, docs/upstream.md §5.1). Frames outside the annotated span are never sampled,
    and validated segments lie inside the video, so every id is a frame that exists.

    Args:
        segments: Validated segments (:func:`parse_keyframes`), at least one.
        sample_factor: A positive integer: about one id per this many annotated frames.
    """
    total = segments[-1].end - segments[0].start
    per_segment = round(total / sample_factor / len(segments))
    points = max(2, per_segment + 1)
    ids: set[int] = set()
    for seg in segments:
        ids.update(int(i) for i in np.round(np.linspace(seg.start, seg.end, points)))
    return sorted(ids)


def stepwise_progress(segments: Sequence[Segment], frames: Sequence[float]) -> np.ndarray:
    """Ground-truth progress at frame indices: the paper's step-wise labels (docs/upstream.md
    §5.1).

    Each of the ``N`` sub-tasks is worth ``1/N`` whatever its duration: its start keyframe has
    progress ``k/N`` and its end ``(k+1)/N``. In between progress is linear in the frame index,
    which is what the uniformly sampled points ``i/M`` inside a segment amount to. Before the
    first keyframe it is 0, after the last 1, and between segments that leave a gap it holds.

    Args:
        segments: Validated segments (:func:`parse_keyframes`), at least one.
        frames: Frame indices, possibly fractional (e.g. sample times times the frame rate).
    """
    n = len(segments)
    xs: list[float] = []
    ys: list[float] = []
    for k, seg in enumerate(segments):
        for frame, value in ((seg.start, k / n), (seg.end, (k + 1) / n)):
            if not xs or frame != xs[-1]:
                xs.append(frame)
                ys.append(value)
    return np.interp(np.asarray(frames, dtype=float), xs, ys)


def zero_hop_afters(ids: Sequence[int]) -> list[tuple[int, int]]:
    """For each sampled id, the two candidate AFTER frames of a zero-hop sample (upstream).

    The AFTER frame is the BEFORE frame moved by ``max(1, floor(0.075 * (next id - previous
    id)))`` raw frames either way, clamped to the sampled span: close enough that the task
    state is unchanged. Step 0 extracts both candidates, step 1 picks one.

    Returns:
        ``(earlier, later)`` frame ids, one pair per entry of ``ids``.
    """
    n = len(ids)
    first, last = ids[0], ids[-1]
    pairs = []
    for k, frame in enumerate(ids):
        window = ids[min(n - 1, k + 1)] - ids[max(0, k - 1)]
        delta = max(1, math.floor(window * ZERO_HOP_FRACTION))
        pairs.append((max(first, frame - delta), min(last, frame + delta)))
    return pairs


def load_instructions(paths: Sequence[Path]) -> list[str]:
    """Task paraphrases from the first existing ``task_instruction.json`` in ``paths``.

    Args:
        paths: Candidates, most specific first (the episode's own file, then the dataset's).

    Returns:
        The paraphrases; upstream's ``['perform the task']`` (with a warning) when no file exists.

    Raises:
        ConfigError: The file is malformed, empty, or holds a task the prompt cannot carry.
    """
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        log.warning('no task_instruction.json in %s: every sample gets the task %r',
                    [str(p.parent) for p in paths], DEFAULT_INSTRUCTION)
        return [DEFAULT_INSTRUCTION]
    data = read_json(path)
    if isinstance(data, dict):
        data = data.get('instructions', [data['instruction']] if 'instruction' in data else None)
    if not isinstance(data, list) or not data or not all(isinstance(t, str) for t in data):
        raise ConfigError(f'{path}: expected a non-empty list of instruction strings (or '
                          f'{{"instructions": [...]}} / {{"instruction": "..."}}), got '
                          f'{_excerpt(data)!r}')
    for task in data:
        try:
            check_task(task)
        except ConfigError as exc:
            raise ConfigError(f'{path}: {exc}') from None
    return list(data)


def read_json(path: Path) -> Any:
    """Decode a JSON file; a missing or broken file is a ``ConfigError`` naming it."""
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except OSError as exc:
        raise ConfigError(f'cannot read {str(path)!r}: {exc.strerror}') from exc
    except ValueError as exc:
        raise ConfigError(f'{str(path)!r} is not valid JSON: {exc}') from exc


def _excerpt(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + '…'
