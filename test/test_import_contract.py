"""The import contract: the core (prompt -> parse -> modes/fusion -> shaping, the engine) imports
neither ROS nor torch/transformers, checked on the source (every import statement, including
those inside functions) and at run time (importing the whole core in a fresh interpreter loads
none of them). The layout issue extends this to the adapter rules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

#: Top-level packages the core must never import.
FORBIDDEN = ('rclpy', 'torch', 'transformers', 'rosidl_runtime_py', 'sensor_msgs', 'vllm')


def imported(path: Path) -> set[str]:
    """The top-level package of every absolute import in a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
    return names


def core_modules(repo_root: Path) -> list[Path]:
    return sorted((repo_root / 'robo_dopamine_ros' / 'core').glob('*.py'))


def test_contract_core_source_imports_neither_ros_nor_torch(repo_root: Path) -> None:
    modules = core_modules(repo_root)
    assert len(modules) > 10
    bad = {str(p.relative_to(repo_root)): sorted(imported(p) & set(FORBIDDEN))
           for p in modules}
    assert {k: v for k, v in bad.items() if v} == {}


def test_contract_core_loads_neither_ros_nor_torch(repo_root: Path) -> None:
    names = [f'robo_dopamine_ros.core.{p.stem}' for p in core_modules(repo_root)
             if p.stem != '__init__']
    code = (f'import importlib, sys\nfor n in {names!r}: importlib.import_module(n)\n'
            f'print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))')
    done = subprocess.run([sys.executable, '-c', code], cwd=repo_root, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '[]'


@pytest.mark.parametrize('source', ['import torch\n', 'from rclpy.node import Node\n',
                                    'def f():\n    import transformers.models\n'])
def test_contract_check_sees_a_forbidden_import(tmp_path: Path, source: str) -> None:
    """The negative control: the checker is not blind."""
    module = tmp_path / 'm.py'
    module.write_text(source)
    assert imported(module) & set(FORBIDDEN)


def imported_packages(path: Path) -> set[str]:
    """Every ``robo_dopamine_ros`` subpackage a module imports, relative imports resolved."""
    parts = path.relative_to(path.parents[2]).with_suffix('').parts   # robo_dopamine_ros/x/m
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = parts[:len(parts) - node.level]
            target = (*base, *(node.module or '').split('.'))
            names.add('.'.join(target[:2]) if len(target) > 1 else target[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add('.'.join(node.module.split('.')[:2]))
        elif isinstance(node, ast.Import):
            names.update('.'.join(alias.name.split('.')[:2]) for alias in node.names)
    return names


def test_contract_pipeline_imports_no_ros(repo_root: Path) -> None:
    """The sample pipeline runs the node's rules on a machine without ROS (bag replay)."""
    modules = sorted((repo_root / 'robo_dopamine_ros' / 'pipeline').glob('*.py'))
    assert len(modules) >= 5
    bad = {p.name: sorted(imported(p) & set(FORBIDDEN)) for p in modules}
    assert {k: v for k, v in bad.items() if v} == {}
    assert {p.name for p in modules if 'robo_dopamine_ros.ros' in imported_packages(p)} == set()


def test_contract_replay_imports_nothing_from_ros(repo_root: Path) -> None:
    replay = repo_root / 'robo_dopamine_ros' / 'offline' / 'replay.py'
    used = imported_packages(replay)
    assert 'robo_dopamine_ros.pipeline' in used
    assert 'robo_dopamine_ros.ros' not in used and not used & set(FORBIDDEN)


def test_contract_package_check_sees_a_relative_ros_import(tmp_path: Path) -> None:
    """The negative control for the package check: ``from ..ros import x`` is seen."""
    module = tmp_path / 'robo_dopamine_ros' / 'offline' / 'm.py'
    module.parent.mkdir(parents=True)
    module.write_text('from ..ros import convert\nfrom ..pipeline.input import FrameInput\n')
    assert imported_packages(module) == {'robo_dopamine_ros.ros', 'robo_dopamine_ros.pipeline'}
