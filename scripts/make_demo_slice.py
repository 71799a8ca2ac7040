#!/usr/bin/env python3
"""Build the small demo episode shipped in ``robo_dopamine_ros/data/demo_episode/``.

The source is the upstream example episode (FlagOpen/Robo-Dopamine
``dataset/example_raw_data/episode_001``, Apache-2.0): three 640x480 30 fps videos. The whole
time span is kept, but only every ``--step``-th frame (30 fps / 15 = 2 fps), downscaled to
``--width`` x ``--height`` with area interpolation and written with the ``mp4v`` codec, so the
package stays small yet the demo runs on real footage. Keyframe ids are mapped to the new
timeline with ``round(old / step)``. The goal image is the episode's LAST front frame (the
"task fully completed" state), downscaled the same way and saved losslessly.

Reproducible: no randomness; output depends only on the inputs, the arguments and the OpenCV
build's mp4v encoder. Usage (from the repository root)::

    python scripts/make_demo_slice.py \\
        --src /work/shared/data/robot-example/episode_001 \\
        --task-json /work/shared/data/robot-example/task_instruction.json \\
        --dst robo_dopamine_ros/data/demo_episode
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from robo_dopamine_ros.core.names import UPSTREAM_CAMERAS  # noqa: E402

NOTICE = """\
# Demo episode (subsampled slice of a real robot episode)

One real bimanual teleoperation episode ("organize the table"), three synchronized cameras:
`cam_high.mp4` (front), `cam_left_wrist.mp4`, `cam_right_wrist.mp4`, plus `goal.png` (the
episode's last front frame), `task_instruction.json` (task paraphrases) and
`annotated_keyframes.json` (sub-task segments, upstream format; the key is spelled "anotation"
upstream).

Source: the example raw data of the FlagOpen/Robo-Dopamine project
(`dataset/example_raw_data/episode_001` and `dataset/example_raw_data/task_instruction.json`),
https://github.com/FlagOpen/Robo-Dopamine, licensed under the Apache License 2.0
(https://www.apache.org/licenses/LICENSE-2.0).

Changes made for this package (by `scripts/make_demo_slice.py`):

- subsampled from {src_fps:g} fps to {dst_fps:g} fps: every {step}th frame, source frames
  0, {step}, ..., {last_src} of {src_frames} ({dst_frames} frames per camera; the whole time span);
- downscaled from {src_w}x{src_h} to {dst_w}x{dst_h} (area interpolation) and re-encoded
  with the mp4v codec;
- `goal.png`: source front frame {goal_src}, downscaled the same way, saved as PNG;
- `annotated_keyframes.json`: frame ids rescaled to the subsampled timeline,
  `new = round(old / {step})`, clamped to [0, {dst_last}];
- `task_instruction.json`: copied unchanged.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    p.add_argument('--src', type=Path, required=True,
                   help='episode folder with cam_*.mp4 and annotated_keyframes.json')
    p.add_argument('--task-json', type=Path, required=True, help='task_instruction.json')
    p.add_argument('--dst', type=Path, required=True, help='output folder (created)')
    p.add_argument('--step', type=int, default=15, help='keep every STEP-th frame (30 -> 2 fps)')
    p.add_argument('--width', type=int, default=320)
    p.add_argument('--height', type=int, default=240)
    return p.parse_args(argv)


def slice_video(src: Path, dst: Path, indices: list[int], size: tuple[int, int],
                fps: float) -> np.ndarray:
    """Write the frames ``indices`` of ``src`` resized to ``size``; return the last source frame.

    Decodes sequentially (no seeking), which is exact for every codec.
    """
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise SystemExit(f'cannot open {src}')
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    if not writer.isOpened():
        raise SystemExit(f'cannot write {dst} with mp4v')
    wanted = set(indices)
    last = None
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        last = frame
        i += 1
    cap.release()
    writer.release()
    if last is None or i <= max(indices):
        raise SystemExit(f'{src}: decoded {i} frames, need {max(indices) + 1}')
    return last


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = (args.width, args.height)
    args.dst.mkdir(parents=True, exist_ok=True)

    cap = cv2.VideoCapture(str(args.src / f'{UPSTREAM_CAMERAS[0]}.mp4'))
    src_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    src_fps = float(cap.get(cv2.CAP_PROP_FPS))
    src_w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    src_h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    indices = list(range(0, src_frames, args.step))
    dst_fps = src_fps / args.step

    for cam in UPSTREAM_CAMERAS:
        last = slice_video(args.src / f'{cam}.mp4', args.dst / f'{cam}.mp4', indices, size,
                           dst_fps)
        if cam == UPSTREAM_CAMERAS[0]:
            goal = cv2.resize(last, size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(args.dst / 'goal.png'), goal, [cv2.IMWRITE_PNG_COMPRESSION, 9])

    dst_last = len(indices) - 1
    segments = json.loads((args.src / 'annotated_keyframes.json').read_text(encoding='utf-8'))
    for seg in segments:
        for key in ('start_frame_id', 'end_frame_id'):
            seg[key] = min(dst_last, max(0, round(seg[key] / args.step)))
    (args.dst / 'annotated_keyframes.json').write_text(
        json.dumps(segments, indent=4) + '\n', encoding='utf-8')
    (args.dst / 'task_instruction.json').write_bytes(args.task_json.read_bytes())
    (args.dst / 'NOTICE.md').write_text(NOTICE.format(
        src_fps=src_fps, dst_fps=dst_fps, step=args.step, last_src=indices[-1],
        src_frames=src_frames, dst_frames=len(indices), src_w=src_w, src_h=src_h,
        dst_w=args.width, dst_h=args.height, goal_src=src_frames - 1, dst_last=dst_last),
        encoding='utf-8')

    # Check the result reads back through the package's own reader, frame counts equal.
    sys.path.insert(0, str(REPO_ROOT))
    from robo_dopamine_ros.files.frames import open_frames

    for cam in UPSTREAM_CAMERAS:
        with open_frames(args.dst / f'{cam}.mp4') as src:
            shape = src.read(len(src) - 1).shape
            if len(src) != len(indices) or shape != (args.height, args.width, 3):
                raise SystemExit(f'{cam}: read back {len(src)} frames of {shape}')
    print(f'wrote {len(indices)} frames x {len(UPSTREAM_CAMERAS)} cameras at {dst_fps:g} fps to '
          f'{args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
