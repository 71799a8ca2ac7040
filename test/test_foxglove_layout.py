"""config/foxglove_layout.json names only topics and fields the node publishes (or subscribes, for
the cameras, which a ``replay --write-bag`` output and a live system both carry).

Topics come from the node's own source (its ``~/`` publishers under the node name) and the
camera parameters' defaults; fields from msg/*.msg. A renamed field or topic fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from robo_dopamine_ros.core.names import CAMERAS as ROLES
from robo_dopamine_ros.pipeline.param_table import NODE_NAME, PARAMS_BY_NAME

LAYOUT = 'foxglove_layout.json'


def msg_fields(repo_root: Path, name: str) -> set[str]:
    """Field names of msg/<name>.msg (constants and comments left out)."""
    fields = set()
    for line in (repo_root / 'msg' / f'{name}.msg').read_text().splitlines():
        parts = line.split('#')[0].split()
        if len(parts) >= 2 and '=' not in line.split('#')[0]:
            fields.add(parts[1])
    return fields


def node_topics(repo_root: Path) -> dict[str, str]:
    """Topic -> message type of the node's ``~/`` publishers, read from ros/node.py."""
    source = (repo_root / 'robo_dopamine_ros' / 'ros' / 'node.py').read_text()
    found = re.findall(r"create_(?:lifecycle_)?publisher\(\s*(\w+),\s*'~/(\w+)'", source)
    return {f'/{NODE_NAME}/{topic}': msg for msg, topic in found}


def paths(tree: Any) -> list[str]:
    """Every message path (``value``/``topicPath``/``imageTopic``) in a panel config."""
    found: list[str] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in ('value', 'topicPath', 'imageTopic') and isinstance(value, str):
                found.append(value)
            else:
                found += paths(value)
    elif isinstance(tree, list):
        for item in tree:
            found += paths(item)
    return found


def check(layout: dict[str, Any], repo_root: Path) -> list[str]:
    """The layout's paths that name an unknown topic or field."""
    topics = node_topics(repo_root)
    cameras = {PARAMS_BY_NAME[f'cameras.{role}.topic'].default for role in ROLES}
    bad = []
    for path in paths(layout['configById']):
        topic, _, field = path.partition('.')
        if topic in cameras and not field:
            continue
        msg = topics.get(topic)
        first = re.sub(r'\[\d+\]$', '', field.split('.')[0])
        if msg is None or (field and first not in msg_fields(repo_root, msg)):
            bad.append(path)
    return bad


def test_layout_has_three_cameras_progress_reward_and_task_status(repo_root: Path) -> None:
    layout = json.loads((repo_root / 'config' / LAYOUT).read_text())
    panels = layout['configById']
    assert sum(name.startswith('Image!') for name in panels) == 3
    found = paths(panels)
    assert {f'/{NODE_NAME}/progress.progress', f'/{NODE_NAME}/reward.reward',
            f'/{NODE_NAME}/progress.task_status'} <= set(found)
    # Every panel the layout tree places has a config, and every config is placed.
    placed = re.findall(r'"([A-Za-z]+![a-z]+)"', json.dumps(layout['layout']))
    assert sorted(placed) == sorted(panels)


def test_layout_names_only_published_topics_and_fields(repo_root: Path) -> None:
    layout = json.loads((repo_root / 'config' / LAYOUT).read_text())
    assert node_topics(repo_root) == {f'/{NODE_NAME}/progress': 'Progress',
                                      f'/{NODE_NAME}/reward': 'Reward',
                                      f'/{NODE_NAME}/episode': 'EpisodeEvent'}
    assert check(layout, repo_root) == []


def test_layout_check_catches_a_wrong_field_or_topic(repo_root: Path) -> None:
    layout = json.loads((repo_root / 'config' / LAYOUT).read_text())
    plot = layout['configById']['Plot!progress']['paths']
    plot.append({'value': f'/{NODE_NAME}/progress.task_state'})
    plot.append({'value': '/robo_dopamine/rewards.reward'})
    assert check(layout, repo_root) == [f'/{NODE_NAME}/progress.task_state',
                                        '/robo_dopamine/rewards.reward']
