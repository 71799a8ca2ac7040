"""Random access to the frames of a video file or a folder of images, as RGB uint8 arrays.

Mirrors the sources upstream's ``run_pipeline`` and benchmark scripts accept (docs/upstream.md §4.1
item 3, §7.1): a video read with OpenCV, seeking with ``CAP_PROP_POS_FRAMES`` and retrying the read
once (some codecs need it after a seek), or a folder of ``.png``/``.jpg`` frames sorted by file
name. OpenCV decodes BGR; every frame is converted to RGB here, where the channel order is known,
so the rest of the package only ever sees RGB.

OpenCV is an optional dependency and is imported only when a video is opened; folders are read
with Pillow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image

from ..core.errors import ConfigError, ImageError
from ..core.image_headers import DEFAULT_MAX_INPUT_PIXELS, check_pixel_budget, encoded_size

logger = logging.getLogger(__name__)

#: Frame file types accepted in a folder (case-insensitive), as in the upstream eval scripts.
FRAME_SUFFIXES: tuple[str, ...] = ('.png', '.jpg', '.jpeg')

#: Bytes read to size a PNG or JPEG file from its header (JPEG metadata may come first).
_HEADER_BYTES = 1 << 20

_DEMO_EPISODE = Path(__file__).resolve().parent.parent / 'data' / 'demo_episode'


class FrameSource:
    """The frames of one camera, indexed ``0 .. len - 1``.

    Use :func:`open_frames` to create one. A video source keeps its decoder open until
    :meth:`close` (or the end of a ``with`` block); reading consecutive indices then avoids a
    seek per frame.
    """

    def __init__(self, path: Path, files: list[Path] | None = None, capture: Any = None,
                 num_frames: int = 0, fps: float | None = None) -> None:
        self._path = path
        self._files = files
        self._cap = capture
        self._len = len(files) if files is not None else num_frames
        self._fps = fps
        self._next_index: int | None = 0 if capture is not None else None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def is_video(self) -> bool:
        return self._files is None

    @property
    def fps(self) -> float | None:
        """Frame rate the video container reports; None for a folder (it has no timing)."""
        return self._fps

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        kind = 'video' if self.is_video else 'folder'
        return f'FrameSource({kind} {str(self._path)!r}, {self._len} frames)'

    def ref(self, index: int) -> str:
        """A human-readable reference to a frame for logs and result files.

        Video: ``<file name>#<index:06d>``, e.g. ``cam_high.mp4#000123``. Folder: the frame's
        file name, e.g. ``frame_000123.png``.
        """
        self._check_index(index)
        if self._files is not None:
            return self._files[index].name
        return f'{self._path.name}#{index:06d}'

    def read(self, index: int) -> np.ndarray:
        """Decode frame ``index`` as a contiguous RGB uint8 HxWx3 array."""
        self._check_index(index)
        if self._files is not None:
            return read_image(self._files[index])
        return self._read_video(index)

    def close(self) -> None:
        """Release the video decoder; safe to call twice."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _undecodable(self, index: int) -> ImageError:
        self._next_index = None
        return ImageError(f'cannot decode frame {index} of {str(self._path)!r}, which declares '
                          f'{self._len} frames: the video is cut off or corrupt there')

    def _check_index(self, index: int) -> None:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < self._len:
            raise ConfigError(f'frame index must be an integer in [0, {self._len}) for '
                              f'{str(self._path)!r}, got {index!r}')

    def _read_video(self, index: int) -> np.ndarray:
        """Decode frame ``index`` by reading in order, never by seeking.

        After a seek into a video cut off mid-stream, OpenCV may hand back the last decodable
        frame for every later index, so a frozen frame would pass as valid. Reading in order
        (forward: decode and drop the frames between; backward: reopen and read from 0) makes an
        undecodable frame an error that names it.
        """
        if self._cap is None:
            raise ConfigError(f'video {str(self._path)!r} is closed')
        cv2 = _import_cv2()
        if self._next_index is None or index < self._next_index:
            self._cap.release()
            self._cap = cv2.VideoCapture(str(self._path))
            self._next_index = 0
        while self._next_index < index:
            if not self._cap.grab():
                raise self._undecodable(self._next_index)
            self._next_index += 1
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise self._undecodable(index)
        self._next_index = index + 1
        if frame.ndim == 2:
            return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB))
        return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def open_frames(path: str | Path) -> FrameSource:
    """Open a video file or a folder of frames; raise ConfigError if it is missing or empty."""
    p = Path(path)
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if f.is_file()
                        and f.suffix.lower() in FRAME_SUFFIXES), key=lambda f: f.name)
        if not files:
            raise ConfigError(f'no {"/".join(FRAME_SUFFIXES)} frames in folder {str(p)!r}')
        return FrameSource(p, files=files)
    if not p.is_file():
        raise ConfigError(f'frame source does not exist: {str(p)!r}')
    cv2 = _import_cv2()
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise ImageError(f'OpenCV cannot open video {str(p)!r}')
    num_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if num_frames <= 0:
        cap.release()
        raise ImageError(f'video {str(p)!r} reports {num_frames!r} frames')
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    return FrameSource(p, capture=cap, num_frames=num_frames, fps=fps if fps > 0 else None)


def open_cameras(front: str | Path, left: str | Path | None = None,
                 right: str | Path | None = None,
                 ) -> tuple[FrameSource, FrameSource | None, FrameSource | None]:
    """Open the front and optional wrist sources of one episode; all must be equally long.

    Upstream refuses cameras of different lengths (a ``ValueError`` in ``run_pipeline``): frame
    ``i`` of each camera must show the same moment.

    Raises:
        ConfigError: A source is missing or empty, or the frame counts differ (nothing is left
            open then).
    """
    opened: list[FrameSource] = []
    try:
        for path in (front, left, right):
            if path is not None:
                opened.append(open_frames(path))
        require_equal_lengths(opened)
    except BaseException:
        for src in opened:
            src.close()
        raise
    wrists = iter(opened[1:])
    return (opened[0], next(wrists) if left is not None else None,
            next(wrists) if right is not None else None)


def require_equal_lengths(sources: Sequence[FrameSource]) -> None:
    """The one rule for cameras of one episode, in every command: equally many frames.

    Frame ``i`` of each camera must show the same moment; cutting to the shortest would pair
    frames of different moments if one camera started late.

    Raises:
        ConfigError: The frame counts differ (the message names both sources).
    """
    n = len(sources[0])
    for src in sources[1:]:
        if len(src) != n:
            raise ConfigError(f'camera frame counts differ: {sources[0]!r} has {n}, '
                              f'{src!r} has {len(src)}')


def demo_episode_dir() -> Path:
    """The bundled demo episode (three 2 fps 320x240 videos, goal, task, keyframes)."""
    if not (_DEMO_EPISODE / 'cam_high.mp4').is_file():
        raise ConfigError(f'demo episode not found at {str(_DEMO_EPISODE)!r}; '
                          'is the package data installed?')
    return _DEMO_EPISODE


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Read one image file (a frame, a goal image) as RGB uint8 with Pillow.

    The size the file declares is checked against the decode budget ``max_pixels``
    (core/image_headers.py) before its pixels are decoded: ``Image.open`` reads only the header.

    Raises:
        ConfigError: the file does not exist (a wrong path is a setting error).
        ImageError: the file exists but cannot be decoded, or declares more than ``max_pixels``.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f'image path is a directory, not an image file: {str(p)!r}')
    if not p.is_file():
        raise ConfigError(f'image file does not exist: {str(p)!r}')
    try:
        with p.open('rb') as f:
            head = f.read(_HEADER_BYTES)
        # Pillow refuses only far larger images (and raises at open): size PNG/JPEG ourselves.
        size = _declared_size(head)
        if size is not None:
            check_pixel_budget(*size, max_pixels, f'image {str(p)!r}')
        with Image.open(p) as im:
            check_pixel_budget(*im.size, max_pixels, f'image {str(p)!r}')
            return np.asarray(im.convert('RGB'), dtype=np.uint8).copy()
    except ImageError:
        raise
    # Pillow's plugins report malformed files in many ways: OSError (truncated, unidentified),
    # ValueError, SyntaxError (broken PNG chunks), EOFError, DecompressionBombError.
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise ImageError(f'cannot read image {str(p)!r}: {type(e).__name__}: {e}') from e


def _declared_size(head: bytes) -> tuple[int, int] | None:
    """The size a PNG/JPEG header declares; None for another format (Pillow sizes those)."""
    try:
        return encoded_size(head)
    except ImageError:
        return None


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as e:
        raise ConfigError('reading video files needs OpenCV: '
                          'pip install opencv-python-headless') from e
    return cv2
