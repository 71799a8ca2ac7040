"""PyAV decoding and encoding of LeRobot's multi-episode MP4 files.

Decoding follows lerobot's ``decode_video_frames_pyav``: seek to the key frame at or before the
first wanted time, decode forward, and match each wanted time to a decoded frame within a
tolerance (lerobot's default 1e-4 s) — never "the nearest frame, however far": a cut-off or
mis-stamped file is an error that names the episode and the time. Encoding writes one file of
several episodes, each starting where the previous one ended (``from_timestamp``), in any codec
this PyAV build has (``libsvtav1`` is lerobot's default; ``mpeg4`` and ``libx264`` are faster).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ImageError


def _av() -> Any:
    try:
        import av
    except ImportError as e:
        raise ConfigError('LeRobot videos need PyAV: pip install av pyarrow') from e
    return av


def decode_at(path: Path, times_s: Sequence[float], tolerance_s: float, what: str,
              ) -> list[np.ndarray]:
    """Decode the frames shown at ``times_s`` (seconds in the file, increasing) as RGB uint8.

    Args:
        what: Names the request in errors (camera key and episode).

    Raises:
        ConfigError: The file does not exist.
        ImageError: The file cannot be opened or decoded, or has no frame within
            ``tolerance_s`` of a wanted time (cut off, or timestamps that do not match).
    """
    av = _av()
    if not path.is_file():
        raise ConfigError(f'video of {what} missing: {str(path)!r}')
    wanted = list(times_s)
    found: list[np.ndarray] = []
    last_seen: float | None = None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ImageError(f'{str(path)!r} ({what}) has no video stream')
            stream = container.streams.video[0]
            container.seek(max(0, round(wanted[0] / stream.time_base) - 1), backward=True,
                           any_frame=False, stream=stream)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                last_seen = t
                if t < wanted[len(found)] - tolerance_s:
                    continue
                if abs(t - wanted[len(found)]) > tolerance_s:
                    break                          # stepped over a wanted time
                found.append(frame.to_ndarray(format='rgb24'))
                if len(found) == len(wanted):
                    break
    except av.error.FFmpegError as e:
        raise ImageError(f'cannot decode {str(path)!r} ({what}): {e}') from e
    if len(found) < len(wanted):
        seen = 'no frame at all' if last_seen is None else f'the last decoded at {last_seen:.4f} s'
        raise ImageError(f'{str(path)!r} ({what}) has no frame at {wanted[len(found)]:.4f} s '
                         f'(tolerance {tolerance_s:g} s; {seen}): the video is cut off, corrupt, '
                         "or its timestamps do not match the episode's")
    return found


class EpisodeVideoWriter:
    """Encodes episodes one after another into one MP4 file; returns each one's time range.

    Frame ``k`` of the file has pts ``k`` in the encoder's time base ``1 / fps``; the muxer
    rescales it exactly (MP4 uses a multiple of the rate).
    """

    def __init__(self, path: Path, fps: int, size: tuple[int, int], codec: str = 'mpeg4',
                 options: dict[str, str] | None = None) -> None:
        av = _av()
        if codec not in av.codecs_available:
            raise ConfigError(f'this PyAV build has no {codec!r} encoder')
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fps = fps
        self._container = av.open(str(path), 'w')
        self._stream = self._container.add_stream(codec, rate=fps, options=options or {})
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = 'yuv420p'
        self._stream.codec_context.time_base = Fraction(1, fps)
        self._frames = 0

    def add_episode(self, frames: np.ndarray) -> tuple[float, float]:
        """Append an episode's ``(n, h, w, 3)`` RGB frames; returns its (from, to) seconds."""
        av = _av()
        start = self._frames
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
            frame.pts = self._frames
            frame.time_base = Fraction(1, self.fps)
            self._container.mux(self._stream.encode(frame))
            self._frames += 1
        return start / self.fps, self._frames / self.fps

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode())
            self._container.close()
            self._container = None

    def __enter__(self) -> EpisodeVideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def stream_info(path: Path) -> dict[str, Any]:
    """The ``video.*`` entries of a video feature's ``info`` in ``meta/info.json``."""
    av = _av()
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        return {'video.height': s.height, 'video.width': s.width,
                'video.codec': s.codec.canonical_name,
                'video.pix_fmt': s.pix_fmt, 'video.is_depth_map': False,
                'video.fps': int(s.base_rate), 'video.channels': 3, 'has_audio': False}
