"""Offline frame sources: video files and folders of frames, read as RGB uint8 arrays."""

from __future__ import annotations

from .frames import FRAME_SUFFIXES, FrameSource, demo_episode_dir, open_frames, read_image

__all__ = ['FRAME_SUFFIXES', 'FrameSource', 'demo_episode_dir', 'open_frames', 'read_image']
