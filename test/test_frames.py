"""Frame sources: videos and frame folders read as RGB, references, errors, the demo episode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from videos import cut_video, numbered

from robo_dopamine_ros.core.errors import ConfigError, ImageError
from robo_dopamine_ros.files.frames import demo_episode_dir, open_frames, read_image

cv2 = pytest.importorskip('cv2')

CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def bgr(b: int, g: int, r: int, h: int = 48, w: int = 64) -> np.ndarray:
    frame = np.empty((h, w, 3), dtype=np.uint8)
    frame[:] = (b, g, r)
    return frame


def test_frame_source_video_reads_rgb_not_bgr(tmp_path: Path) -> None:
    write_video(tmp_path / 'red.mp4', [bgr(0, 0, 255)] * 5)
    with open_frames(tmp_path / 'red.mp4') as src:
        frame = src.read(2)
        assert len(src) == 5
        assert src.fps == 10.0
        assert src.is_video
        assert frame.shape == (48, 64, 3)
        assert frame.dtype == np.uint8
        assert frame[..., 0].mean() > 200
        assert frame[..., 2].mean() < 50


def test_frame_source_video_seeks_to_the_requested_frame(tmp_path: Path) -> None:
    write_video(tmp_path / 'grey.mp4', [bgr(40 * i, 40 * i, 40 * i) for i in range(6)])
    with open_frames(tmp_path / 'grey.mp4') as src:
        means = [round(src.read(i).mean() / 40) for i in (4, 1, 2, 5, 0)]
    assert means == [4, 1, 2, 5, 0]


def test_frame_source_video_ref_names_file_and_index(tmp_path: Path) -> None:
    write_video(tmp_path / 'cam_high.mp4', [bgr(0, 0, 0)] * 3)
    with open_frames(tmp_path / 'cam_high.mp4') as src:
        assert src.ref(2) == 'cam_high.mp4#000002'


def test_frame_source_folder_sorted_by_name_and_rgb(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / 'frame_000002.png'), bgr(255, 0, 0))  # blue
    cv2.imwrite(str(tmp_path / 'frame_000000.png'), bgr(0, 0, 255))  # red
    cv2.imwrite(str(tmp_path / 'frame_000001.png'), bgr(0, 255, 0))  # green
    (tmp_path / 'notes.txt').write_text('not a frame')
    with open_frames(tmp_path) as src:
        assert len(src) == 3
        assert src.fps is None
        assert not src.is_video
        assert src.ref(0) == 'frame_000000.png'
        assert src.read(0)[0, 0].tolist() == [255, 0, 0]
        assert src.read(1)[0, 0].tolist() == [0, 255, 0]
        assert src.read(2)[0, 0].tolist() == [0, 0, 255]


def test_frame_source_folder_accepts_jpg(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / 'a.JPG'), bgr(0, 0, 255))
    with open_frames(tmp_path) as src:
        assert src.ref(0) == 'a.JPG'
        assert src.read(0)[..., 0].mean() > 200


def test_frame_source_missing_path_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'nope\.mp4'):
        open_frames(tmp_path / 'nope.mp4')


def test_frame_source_empty_folder_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'no \.png'):
        open_frames(tmp_path)


def test_frame_source_index_out_of_range_raises_config_error(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / 'f.png'), bgr(0, 0, 0))
    with open_frames(tmp_path) as src, pytest.raises(ConfigError, match='got 1'):
        src.read(1)


def test_frame_source_corrupt_frame_raises_image_error(tmp_path: Path) -> None:
    (tmp_path / 'f.png').write_bytes(b'not a png')
    with open_frames(tmp_path) as src, pytest.raises(ImageError, match=r'f\.png'):
        src.read(0)


def test_frame_source_non_video_file_raises_image_error(tmp_path: Path) -> None:
    (tmp_path / 'x.mp4').write_bytes(b'garbage')
    with pytest.raises(ImageError, match=r'x\.mp4'):
        open_frames(tmp_path / 'x.mp4')


def test_frame_source_closed_video_raises_config_error(tmp_path: Path) -> None:
    write_video(tmp_path / 'v.mp4', [bgr(0, 0, 0)] * 2)
    with open_frames(tmp_path / 'v.mp4') as src:
        pass
    with pytest.raises(ConfigError, match='closed'):
        src.read(0)


def test_read_image_png_written_as_bgr_comes_back_rgb(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / 'goal.png'), bgr(0, 0, 255, h=2, w=3))
    image = read_image(tmp_path / 'goal.png')
    assert image.shape == (2, 3, 3)
    assert image[0, 0].tolist() == [255, 0, 0]


def test_read_image_missing_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'goal\.png'):
        read_image(tmp_path / 'goal.png')


def test_frame_source_demo_episode_has_three_equal_length_videos() -> None:
    root = demo_episode_dir()
    lengths = []
    for cam in CAMERAS:
        with open_frames(root / f'{cam}.mp4') as src:
            lengths.append(len(src))
            assert src.fps == 2.0
            assert src.read(len(src) - 1).shape == (240, 320, 3)
    assert lengths == [86, 86, 86]


def test_frame_source_demo_episode_metadata_is_consistent() -> None:
    root = demo_episode_dir()
    assert read_image(root / 'goal.png').shape == (240, 320, 3)
    segments = json.loads((root / 'annotated_keyframes.json').read_text(encoding='utf-8'))
    assert len(segments) == 16
    assert (segments[0]['start_frame_id'], segments[-1]['end_frame_id']) == (1, 84)
    tasks = json.loads((root / 'task_instruction.json').read_text(encoding='utf-8'))
    assert 'organize the table' in tasks
    notice = (root / 'NOTICE.md').read_text(encoding='utf-8')
    assert 'FlagOpen/Robo-Dopamine' in notice
    assert 'Apache License 2.0' in notice
    assert sum(f.stat().st_size for f in root.iterdir()) < 1_500_000


def test_frame_source_names_the_first_undecodable_frame_of_a_cut_video(tmp_path: Path) -> None:
    with open_frames(cut_video(tmp_path)) as src:
        assert len(src) == 60
        assert abs(int(src.read(10).mean()) - 40) <= 3
        with pytest.raises(ImageError, match=r'cannot decode frame (\d+) of .*declares 60 frames'
                           ) as err:
            src.read(50)
        first_bad = int(str(err.value).split('frame ')[1].split(' ')[0])
        assert 10 < first_bad < 50
        assert abs(int(src.read(5).mean()) - 20) <= 3         # going back reopens: still fine


class FrozenAfterCut:
    """A stand-in for ``cv2.VideoCapture`` on a video cut after frame 29 whose decoder, after a
    seek past the cut, hands back the last decodable frame (what real H.264 files did)."""

    def __init__(self, path: str) -> None:
        self.pos = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_COUNT: 60.0, cv2.CAP_PROP_FPS: 10.0}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        self.pos = int(value)
        return True

    def grab(self) -> bool:
        if self.pos >= 30:
            return False
        self.pos += 1
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        frame = numbered(min(self.pos, 29))         # frozen past the cut
        self.pos += 1
        return True, frame

    def release(self) -> None:
        pass


def test_frame_source_never_returns_a_frozen_frame_for_a_late_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = tmp_path / 'frozen.mp4'
    video.write_bytes(b'stand-in')
    monkeypatch.setattr(cv2, 'VideoCapture', FrozenAfterCut)
    with open_frames(video) as src:
        assert int(src.read(9).mean()) == 4 * 9
        with pytest.raises(ImageError, match=r'cannot decode frame 30 of .*declares 60 frames'):
            src.read(59)                                # the goal frame of `episode`
