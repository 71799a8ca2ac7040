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
