"""Names every episode format shares, defined once: cameras, their upstream and ROS names, labels.

The node's default topics, upstream's video files and frame folders, header frame ids and the
label files kept beside an episode's frames (a bag directory or an episode folder) all follow
from these, so a bag written here replays with the node's defaults and upstream's tools find
their files.
"""

from __future__ import annotations

#: Camera names, in the GRM's view-slot order (front, left wrist, right wrist).
CAMERAS: tuple[str, ...] = ('front', 'left', 'right')

#: Upstream's camera names (video files, frame folders, header frame ids), by camera.
CAMERA_FILES: dict[str, str] = {'front': 'cam_high', 'left': 'cam_left_wrist',
                                'right': 'cam_right_wrist'}
#: Upstream's camera names in view-slot order.
UPSTREAM_CAMERAS: tuple[str, ...] = tuple(CAMERA_FILES[cam] for cam in CAMERAS)

#: Camera -> raw image topic: the node's defaults (``cameras.<name>.topic``) and bags' topics.
DEFAULT_TOPICS: dict[str, str] = {cam: f'/{CAMERA_FILES[cam]}/image_raw' for cam in CAMERAS}

#: Label files written beside an episode's frames (bag directory or episode folder).
GROUND_TRUTH_FILE = 'ground_truth.json'
GOAL_FILE = 'goal.png'
#: Upstream's sub-task annotations (docs/upstream.md §8.1; the key is spelled ``anotation`` there).
KEYFRAMES_FILE = 'annotated_keyframes.json'
#: Upstream's task paraphrases file (a JSON list of instructions).
TASK_FILE = 'task_instruction.json'
