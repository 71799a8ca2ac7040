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


# -- The layering: core <- backends, files <- pipeline <- synthetic, models <- bags <- adapters
# <- cli. A module may import its own package and the packages of lower layers. Packages of one
# layer do not import each other; an adapter reaches another adapter only through SHARED_MODULES,
# the modules documented as shared in docs/architecture.md.

LAYERS: tuple[tuple[str, ...], ...] = (
    ('core',),                                   # the GRM contract, pure
    ('backends', 'files', 'msg', 'srv', 'learner'),   # GRM runtimes; files; generated
                                                 # interfaces; the learner-side reward link
    ('pipeline',),                               # the node's sample pipeline, ROS-free
    ('synthetic', 'models'),                     # episodes with known progress (a package,
                                                 # one job per module); tiny GRMs
    ('bags',),                                   # rosbag2 files without ROS
    ('ros', 'offline', 'evaluation', 'training', 'lerobot', 'rl'),   # the adapters
    ('cli',),                                    # the command line, over everything
)
SHARED_MODULES: tuple[str, ...] = (
    'offline.episode',       # frame scoring with the engine; relabel-lerobot scores through it
    'offline.commands',      # the frame-scoring command-line options, shared with relabel-lerobot
    'offline.plots',         # the progress/reward plot, also drawn by the ROS demo
    'evaluation.metrics',    # every metric (VOC for replay's summary, AUC, Spearman)
    'training.keyframes',    # upstream's keyframe and task files, read by replay too
)
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def import_targets(path: Path, package_root: Path) -> set[str]:
    """Every module of the package a source file imports, dotted below ``robo_dopamine_ros``
    (``offline.episode``); relative imports resolved, ``from pkg import module`` included."""
    parts = path.relative_to(package_root.parent).with_suffix('').parts
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = '.'.join(parts[:len(parts) - node.level] + tuple(
                    (node.module or '').split('.') if node.module else ()))
            else:
                base = node.module or ''
            names = [f'{base}.{alias.name}' for alias in node.names]
            modules = [n for n in names if _is_module(n, package_root)]
            targets.update(modules or [base])
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    prefix = f'{package_root.name}.'
    return {t.removeprefix(prefix) for t in targets if t.startswith(prefix)}


def _is_module(dotted: str, package_root: Path) -> bool:
    rel = Path(*dotted.split('.')[1:])
    return (package_root / rel).with_suffix('.py').is_file() or (package_root / rel).is_dir()


def layer_violations(package_root: Path) -> list[str]:
    """``module -> target: why`` for every import that breaks the layering."""
    found: list[str] = []
    for path in sorted(package_root.rglob('*.py')):
        rel = path.relative_to(package_root)
        if rel == Path('__init__.py'):
            continue
        own = rel.parts[0].removesuffix('.py')
        for target in sorted(import_targets(path, package_root)):
            other = target.split('.')[0]
            if other == own:
                continue
            if other not in LAYER_OF or own not in LAYER_OF:
                found.append(f'{rel} -> {target}: package not in LAYERS')
            elif LAYER_OF[other] > LAYER_OF[own]:
                found.append(f'{rel} -> {target}: imports a higher layer')
            elif LAYER_OF[other] == LAYER_OF[own] and not any(
                    target == s or target.startswith(f'{s}.') for s in SHARED_MODULES):
                found.append(f'{rel} -> {target}: same layer, not a shared module')
    return found


def test_contract_layers_hold_for_every_module(repo_root: Path) -> None:
    package_root = repo_root / 'robo_dopamine_ros'
    packages = {p.name.removesuffix('.py') for p in package_root.iterdir()
                if (p.suffix == '.py' and p.name != '__init__.py')
                or (p.is_dir() and (p / '__init__.py').is_file())}
    assert packages - set(LAYER_OF) == set()      # a new package must be placed in a layer
    assert layer_violations(package_root) == []


def test_contract_shared_modules_exist(repo_root: Path) -> None:
    package_root = repo_root / 'robo_dopamine_ros'
    assert [s for s in SHARED_MODULES if not _is_module(f'x.{s}', package_root)] == []


def test_contract_layer_check_sees_upward_and_sideways_imports(tmp_path: Path) -> None:
    """The negative control: the core importing the pipeline, and an adapter importing another
    adapter's private module, are both reported; a shared module is not."""
    root = tmp_path / 'robo_dopamine_ros'
    for folder in ('core', 'pipeline', 'ros', 'offline'):
        (root / folder).mkdir(parents=True)
        (root / folder / '__init__.py').write_text('')
    (root / 'pipeline' / 'input.py').write_text('')
    (root / 'offline' / 'replay.py').write_text('')
    (root / 'offline' / 'plots.py').write_text('')
    (root / 'core' / 'engine.py').write_text('from ..pipeline.input import FrameInput\n')
    (root / 'ros' / 'demo.py').write_text('from ..offline import replay\n'
                                          'from ..offline.plots import plot_results\n')
    assert layer_violations(root) == [
        'core/engine.py -> pipeline.input: imports a higher layer',
        'ros/demo.py -> offline.replay: same layer, not a shared module']
