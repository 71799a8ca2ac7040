"""The pip install path works without ROS, and the core and the CLI stay free of heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Variables that would let a child see this venv, the colcon install/ or ROS libraries.
_LEAKY_ENV = ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV', 'LD_LIBRARY_PATH', 'AMENT_PREFIX_PATH',
              'CMAKE_PREFIX_PATH', 'COLCON_PREFIX_PATH', '_ROS_WHEELS_BOOTSTRAP_COMPLETE')

_IMPORT_ALL_CORE = """
import importlib, json, pkgutil, sys
import robo_dopamine_ros.core as core
names = [m.name for m in pkgutil.iter_modules(core.__path__, core.__name__ + '.')]
for name in names:
    importlib.import_module(name)
heavy = sorted({'rclpy', 'torch', 'transformers'} & set(sys.modules))
print(json.dumps({'modules': names, 'heavy': heavy}))
"""


def clean_env() -> dict[str, str]:
    """This process's environment without anything pointing at a venv, install/ or ROS."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    path = os.environ.get('PATH', '').split(os.pathsep)
    env['PATH'] = os.pathsep.join(p for p in path if not p.startswith(sys.prefix))
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env if env is not None else clean_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_core_modules_import_without_rclpy_or_torch(repo_root: Path) -> None:
    env = clean_env() | {'PYTHONPATH': str(repo_root)}
    proc = run([sys.executable, '-c', _IMPORT_ALL_CORE], cwd=repo_root, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert 'robo_dopamine_ros.core.prompt' in result['modules']
    assert result['heavy'] == []


def test_cli_module_imports_nothing_heavy(repo_root: Path) -> None:
    heavy = "{'numpy', 'torch', 'rclpy', 'transformers'}"
    code = f'import sys, robo_dopamine_ros.cli; print(sorted({heavy} & set(sys.modules)))'
    env = clean_env() | {'PYTHONPATH': str(repo_root)}
    proc = run([sys.executable, '-c', code], cwd=repo_root, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '[]'


@pytest.mark.slow
def test_pip_editable_install_works_without_ros(repo_root: Path, tmp_path: Path) -> None:
    base_python = getattr(sys, '_base_executable', sys.executable)
    venv = tmp_path / 'venv'
    proc = run([base_python, '-m', 'venv', str(venv)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    python, launcher = venv / 'bin' / 'python', venv / 'bin' / 'robo-dopamine'

    # What a user on a machine without ROS types (leaves robo_dopamine_ros.egg-info, gitignored).
    proc = run([str(python), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', '-e',
                str(repo_root)], cwd=tmp_path, timeout=300.0)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    proc = run([str(launcher), '--help'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'prompt' in proc.stdout

    proc = run([str(launcher), 'prompt', 'put the cup on the plate'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'put the cup on the plate' in proc.stdout

    code = ('import robo_dopamine_ros.core.prompt, sys; assert "rclpy" not in sys.modules; '
            'print(robo_dopamine_ros.__file__)')
    proc = run([str(python), '-c', code], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == repo_root / 'robo_dopamine_ros' / '__init__.py'

    proc = run([str(python), '-c', 'import rclpy'], cwd=tmp_path)
    assert proc.returncode == 1
    assert "No module named 'rclpy'" in proc.stderr
