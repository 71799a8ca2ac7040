"""A rendered episode -> upstream's raw data on disk: one video or frame folder per camera, plus
the labels."""

from __future__ import annotations

import enum
from pathlib import Path

from ..core.errors import ConfigError
from ..core.names import CAMERA_FILES
from .spec import SyntheticEpisode


class FileForm(str, enum.Enum):
    """How :func:`write_episode_files` stores the frames (upstream's raw-data forms)."""

    VIDEOS = 'videos'   # cam_high.mp4, ... (mp4v: lossy)
    FRAMES = 'frames'   # cam_high/frame_000000.png, ... (lossless)


def write_episode_files(episode: SyntheticEpisode, folder: str | Path,
                        form: FileForm | str = FileForm.VIDEOS) -> Path:
    """Write an episode as upstream's raw data: one video or frame folder per camera, plus
    the labels (:meth:`SyntheticEpisode.write_labels`), for ``robo-dopamine episode``.

    Videos are mp4v at the episode's fps, as upstream's examples; mp4 is lossy, so pixel-exact
    comparisons use the frame folders (PNG) instead.

    Raises:
        ConfigError: ``folder`` exists already, or a video cannot be written.
    """
    import cv2

    form = FileForm(form)
    out = Path(folder)
    if out.exists():
        raise ConfigError(f'episode folder exists already, not overwriting: {str(out)!r}')
    out.mkdir(parents=True)
    h, w = episode.frames['front'].shape[1:3]
    for cam, name in CAMERA_FILES.items():
        frames = episode.frames[cam]
        if form is FileForm.FRAMES:
            (out / name).mkdir()
            for i, rgb in enumerate(frames):
                cv2.imwrite(str(out / name / f'frame_{i:06d}.png'),
                            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            continue
        writer = cv2.VideoWriter(str(out / f'{name}.mp4'), cv2.VideoWriter_fourcc(*'mp4v'),
                                 episode.spec.fps, (w, h))
        if not writer.isOpened():
            raise ConfigError(f'OpenCV cannot write {str(out / name)!r}.mp4 with mp4v')
        try:
            for rgb in frames:
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    episode.write_labels(out)
    return out
