"""config/*.yaml against the node's one parameter table (robo_dopamine_ros/pipeline/params.py).

A YAML value of the wrong type stops the node at startup (ROS fixes a parameter's type by its
default: ``1`` for a double is refused), and a misspelt name is silently a different parameter,
so every file is checked name by name and type by type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip('rclpy', reason='rclpy is not importable: no ROS 2 here')

from robo_dopamine_ros.pipeline.params import PARAMS, NodeConfig, Reliability, Transport
from robo_dopamine_ros.pipeline.params_file import flatten

DEFAULTS = {p.name: p.default for p in PARAMS}


def load(repo_root: Path, name: str) -> dict[str, Any]:
    """The file's parameters; it must use the ``/**: ros__parameters:`` wildcard form."""
    tree = yaml.safe_load((repo_root / 'config' / name).read_text())
    assert list(tree) == ['/**'] and list(tree['/**']) == ['ros__parameters']
    return flatten(tree['/**']['ros__parameters'])


@pytest.mark.parametrize('name', ['default.yaml', 'single_camera.yaml', 'demo.yaml',
                                  'remote_server.yaml'])
def test_config_file_names_only_node_parameters_with_their_declared_types(
        repo_root: Path, name: str) -> None:
    values = load(repo_root, name)
    assert set(values) <= set(DEFAULTS)
    assert {k: type(v) for k, v in values.items()} == {k: type(DEFAULTS[k]) for k in values}


def test_default_yaml_lists_every_parameter_at_its_default(repo_root: Path) -> None:
    assert load(repo_root, 'default.yaml') == DEFAULTS


def test_single_camera_yaml_configures_the_front_camera_alone(repo_root: Path) -> None:
    config = NodeConfig.from_values(load(repo_root, 'single_camera.yaml'))
    assert [(c.role, c.topic, c.transport) for c in config.cameras] == [
        ('front', '/cam_high/image_raw', Transport.RAW)]


def test_remote_server_yaml_scores_through_a_served_model(repo_root: Path) -> None:
    config = NodeConfig.from_values(load(repo_root, 'remote_server.yaml'))
    assert config.backend == 'openai' and config.load_retry_s > 0
    assert (config.backend_options['model'], config.backend_options['base_url']) == (
        'grm-3b', 'http://gpu-box.local:8000/v1')
    assert config.profile.name == 'GRM-3B'          # from model.path: what the server serves


def test_demo_yaml_is_valid_once_the_demo_names_the_model(repo_root: Path) -> None:
    values = load(repo_root, 'demo.yaml')
    assert (values['model.path'], values['goal_image']) == ('', '')
    config = NodeConfig.from_values({**values, 'model.path': '/models/Robo-Dopamine-GRM-3B'})
    assert config.reliability is Reliability.RELIABLE
    assert config.engine.sampling.interval_s == 2.0
    assert config.task == 'organize the table'
    assert config.backend_options['device'] == 'cpu'
    assert len(config.cameras) == 3
