"""The README and docs/ are a map of the real tree: every relative link resolves (files and
heading anchors), the README stays a one-screen quick start that links every page, and the
architecture tree in docs/architecture.md is generated from ``git ls-files`` and each module's
docstring, so a new, moved or removed module fails until it is regenerated
(``python3 scripts/architecture_tree.py --write``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from script_loader import load_script

#: ``[label](target)`` and ``![alt](target)``; targets never contain spaces here.
_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
_FENCE = re.compile(r'^```.*?^```', re.S | re.M)
README_MAX_LINES = 300
#: A citation of the upstream page: ``docs/upstream.md §7.2`` (and ``§9`` after it, in a list).
_CITATION = re.compile(r'docs/upstream\.md (§[\d.]+(?:(?:,| and| /) §[\d.]+)*)')


def _pages(repo_root: Path) -> list[Path]:
    return [repo_root / 'README.md', *sorted((repo_root / 'docs').glob('*.md'))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub('', page.read_text(encoding='utf-8'))
    return {_slug(m.group(1)) for m in re.finditer(r'^#{1,6} (.+)$', text, re.M)}


def broken_links(page: Path) -> list[str]:
    """The relative links of a Markdown page whose file or heading anchor does not exist."""
    text = _FENCE.sub('', page.read_text(encoding='utf-8'))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r'^[a-z]+:', target):
            continue
        path, _, anchor = target.partition('#')
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or (anchor and dest.suffix == '.md'
                                 and anchor not in _anchors(dest)):
            broken.append(target)
    return broken


def test_every_relative_link_resolves(repo_root: Path) -> None:
    pages = _pages(repo_root)
    assert len(pages) >= 10
    assert {p.name: broken_links(p) for p in pages} == {p.name: [] for p in pages}


def test_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    """The negative control: a link to a missing page and to a heading that is not there."""
    (tmp_path / 'other.md').write_text('# Other\n\n## A served GRM, shared by a fleet\n')
    page = tmp_path / 'page.md'
    page.write_text('[ok](other.md#a-served-grm-shared-by-a-fleet) [gone](missing.md) '
                    '[no anchor](other.md#nowhere) [both](gone.md#x) [web](https://example.org/x)\n'
                    '```\n[in a code block](ignored.md)\n```\n')
    assert broken_links(page) == ['missing.md', 'other.md#nowhere', 'gone.md#x']


def test_readme_is_a_quick_start_that_links_every_page(repo_root: Path) -> None:
    readme = (repo_root / 'README.md').read_text(encoding='utf-8')
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert 'make demo' in readme and 'make test' in readme
    linked = {Path(t.partition('#')[0]).name for t in _LINK.findall(readme)}
    pages = {p.name for p in (repo_root / 'docs').glob('*.md')}
    assert pages - linked == set()


@pytest.mark.skipif(shutil.which('git') is None, reason='git lists the tracked files')
def test_architecture_tree_matches_git_ls_files(repo_root: Path) -> None:
    tree = load_script('architecture_tree')
    files = tree.tracked_files(repo_root)
    assert 'robo_dopamine_ros/core/engine.py' in files
    page = (repo_root / tree.TREE_PAGE).read_text(encoding='utf-8')
    assert tree.tree_section(page) == tree.render(files, repo_root)


def test_architecture_tree_lists_every_module(repo_root: Path) -> None:
    tree = load_script('architecture_tree')
    section = tree.tree_section((repo_root / tree.TREE_PAGE).read_text(encoding='utf-8'))
    modules = [p for p in (repo_root / 'robo_dopamine_ros').rglob('*.py')
               if p.name != '__init__.py']
    lines = section.splitlines()
    assert len(modules) > 75
    assert [p.name for p in modules if not any(f'`{p.name}` — ' in line for line in lines)] == []


def test_architecture_tree_refuses_what_it_cannot_place(repo_root: Path, tmp_path: Path) -> None:
    """The negative control: an unplaced top-level file and a module without a docstring."""
    tree = load_script('architecture_tree')
    files = tree.tracked_files(repo_root) if shutil.which('git') else []
    if files:
        with pytest.raises(tree.TreeError, match='not in TOP_FILES'):
            tree.render([*files, 'stray.txt'], repo_root)
    bare = tmp_path / 'bare.py'
    bare.write_text('X = 1\n')
    with pytest.raises(tree.TreeError, match='no docstring'):
        tree.summary(bare)
    with pytest.raises(tree.TreeError, match='no generated architecture tree markers'):
        tree.tree_section('# a page without the markers\n')


def _upstream_sections(repo_root: Path) -> set[str]:
    text = (repo_root / 'docs' / 'upstream.md').read_text(encoding='utf-8')
    return set(re.findall(r'^#{2,3} (\d+(?:\.\d+)?)\.? ', text, re.M))


def unresolved_citations(text: str, sections: set[str]) -> list[str]:
    """The ``docs/upstream.md §N`` citations in ``text`` that name no section of that page."""
    return [number for group in _CITATION.findall(text)
            for number in re.findall(r'§([\d.]+)', group)
            if number.rstrip('.') not in sections]


@pytest.mark.skipif(shutil.which('git') is None, reason='git lists the tracked files')
def test_every_upstream_citation_names_a_section(repo_root: Path) -> None:
    tree = load_script('architecture_tree')
    sections = _upstream_sections(repo_root)
    assert {'2.2', '3.4', '7.2', '9'} <= sections
    cited, unresolved, unlinked = 0, {}, []
    for name in tree.tracked_files(repo_root):
        path = repo_root / name
        if path.suffix not in ('.py', '.md') or name in ('docs/upstream.md', 'test/test_docs.py'):
            continue
        text = path.read_text(encoding='utf-8')
        cited += len(_CITATION.findall(text))
        if bad := unresolved_citations(text, sections):
            unresolved[name] = bad
        if re.search(r'\bspec §', text, re.I):
            unlinked.append(name)
    assert cited > 40 and unresolved == {} and unlinked == []


def test_citation_check_finds_a_missing_section(repo_root: Path) -> None:
    """The negative control: a section the page does not have."""
    sections = _upstream_sections(repo_root)
    assert unresolved_citations('see docs/upstream.md §7.2 and §7.9', sections) == ['7.9']
    assert unresolved_citations('docs/upstream.md §12', sections) == ['12']
