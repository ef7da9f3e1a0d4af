"""Module and file paths named in the code (docstrings, comments, messages) exist, so that a
module moved or merged leaves no reader pointed at nothing."""

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    path
    for folder in ('mae_seg', 'tools', 'tests', 'configs')
    for pattern in ('*.py', '*.sh')
    for path in (ROOT / folder).rglob(pattern)
    if path != Path(__file__).resolve()  # its examples name moved modules on purpose
)
# ``mae_seg.io.fit``, ``mae_seg.convert.layouts.official_to_mae_vit``; not a file name
# (``mae_seg.py``).
DOTTED = re.compile(r'\bmae_seg(?:\.(?!(?:py|sh|md)\b)[A-Za-z_]\w*)+')
FILE = re.compile(r'\b(?:mae_seg|tools|configs|tests)/[\w./-]*?\.(?:py|sh|yaml|yml|txt)\b')
# A path on a line that names another project's ("mmseg's own tests (tests/...)") is theirs.
OTHER_PROJECT = re.compile(r"\b(?:mmseg|mmengine|mmcv|mmpretrain|timm|transformers|torch)'s\b")
# README sections move to docs/ pages; code names the page instead.
README_SECTION = re.compile(r'README\W{0,3}"')
MODULE_ATTRIBUTES = {'__file__', '__name__', '__path__', '__version__'}


@cache
def top_level_names(module: Path) -> frozenset[str]:
    """What a module defines or imports at its top level."""
    names = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split('.')[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return frozenset(names)


def resolves(dotted: str) -> bool:
    """A module, or a name defined at the top level of the longest module it starts with."""
    parts = dotted.split('.')
    for length in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:length])
        module = base / '__init__.py' if base.is_dir() else base.with_suffix('.py')
        if module.is_file():
            rest = parts[length:]
            return not rest or rest[0] in MODULE_ATTRIBUTES | top_level_names(module)
    return False


def mentions(pattern: re.Pattern, *, ours_only: bool = False) -> list[str]:
    """``'<file>:<line>: <match>'`` for every match in the sources; ``ours_only`` passes over
    lines that name another project's."""
    found = []
    for path in SOURCES:
        text = path.read_text()
        lines = text.splitlines()
        for match in pattern.finditer(text):
            line = text.count('\n', 0, match.start()) + 1
            if not (ours_only and OTHER_PROJECT.search(lines[line - 1])):
                found.append(f'{path.relative_to(ROOT)}:{line}: {match.group()}')
    return found


def test_the_sources_are_found():
    assert ROOT / 'mae_seg' / 'convert' / 'layouts.py' in SOURCES
    assert ROOT / 'tools' / 'dist_train.sh' in SOURCES


def test_dotted_module_paths_resolve():
    stale = [m for m in mentions(DOTTED) if not resolves(m.rsplit(' ', 1)[1])]
    assert not stale, 'no such module or name:\n' + '\n'.join(stale)


def test_file_paths_exist():
    paths = mentions(FILE, ours_only=True)
    stale = [m for m in paths if not (ROOT / m.rsplit(' ', 1)[1]).is_file()]
    assert not stale, 'no such file:\n' + '\n'.join(stale)


def test_no_readme_section_is_cited():
    assert not mentions(README_SECTION)


@pytest.mark.parametrize(
    'dotted, exists',
    [
        ('mae_seg.io.fit', True),
        ('mae_seg.convert.layouts.official_to_mae_vit', True),
        ('mae_seg.__version__', True),
        ('mae_seg.checkpoint.fit', False),
        ('mae_seg.convert.layouts.no_such_function', False),
        ('mae_seg.apis.runner', False),
    ],
)
def test_the_resolution_tells_moved_modules_apart(dotted, exists):
    assert resolves(dotted) is exists
