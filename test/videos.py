"""Test videos built on the fly: frames that tell their index, and recordings cut off."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def numbered(i: int) -> np.ndarray:
    """A frame whose grey level tells its index (MJPEG keeps it within a few levels)."""
    return np.full((48, 64, 3), 4 * i, np.uint8)


def cut_video(tmp_path: Path, frames: int = 60, keep: float = 0.6) -> Path:
    """An MJPEG AVI cut off mid-stream: it opens and declares ``frames`` frames, but only the
    first part decodes (as a recording whose writer died)."""
    full = tmp_path / 'full.avi'
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
    for i in range(frames):
        writer.write(numbered(i))
    writer.release()
    data = full.read_bytes()
    cut = tmp_path / 'cut.avi'
    cut.write_bytes(data[:int(len(data) * keep)])
    return cut
