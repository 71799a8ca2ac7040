"""The README's architecture tree is the real tree: generated from ``git ls-files`` and each
module's docstring, and compared here, so a new, moved or removed module fails until the README is
regenerated (``python3 scripts/architecture_tree.py --write``)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _tree_module(repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location('architecture_tree',
                                                  repo_root / 'scripts' / 'architecture_tree.py')
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault('architecture_tree', module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which('git') is None, reason='git lists the tracked files')
def test_readme_tree_matches_git_ls_files(repo_root: Path) -> None:
    tree = _tree_module(repo_root)
    files = tree.tracked_files(repo_root)
    assert 'robo_dopamine_ros/core/engine.py' in files
    readme = (repo_root / 'README.md').read_text(encoding='utf-8')
    assert tree.readme_section(readme) == tree.render(files, repo_root)


def test_readme_tree_lists_every_module(repo_root: Path) -> None:
    tree = _tree_module(repo_root)
    section = tree.readme_section((repo_root / 'README.md').read_text(encoding='utf-8'))
    modules = [p for p in (repo_root / 'robo_dopamine_ros').rglob('*.py')
               if p.name != '__init__.py']
    lines = section.splitlines()
    assert len(modules) > 75
    assert [p.name for p in modules if not any(f'`{p.name}` — ' in line for line in lines)] == []


def test_readme_tree_refuses_what_it_cannot_place(repo_root: Path, tmp_path: Path) -> None:
    """The negative control: an unplaced top-level file and a module without a docstring."""
    tree = _tree_module(repo_root)
    files = tree.tracked_files(repo_root) if shutil.which('git') else []
    if files:
        with pytest.raises(tree.TreeError, match='not in TOP_FILES'):
            tree.render([*files, 'stray.txt'], repo_root)
    bare = tmp_path / 'bare.py'
    bare.write_text('X = 1\n')
    with pytest.raises(tree.TreeError, match='no docstring'):
        tree.summary(bare)
    with pytest.raises(tree.TreeError, match='no generated architecture tree markers'):
        tree.readme_section('# a README without the markers\n')
