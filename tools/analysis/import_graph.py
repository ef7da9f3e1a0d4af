"""Print the import graph of the ``mae_seg`` package: lines per package, the imports between
packages, cycles, imports against the layer order, and imports hidden inside functions.

Usage::

    python tools/analysis/import_graph.py [--root DIR] [--check]

``--root`` is a checkout (default: this one); ``--check`` exits 1 if the graph has a cycle,
an import against the layer order or an import of ``mae_seg`` inside a function. The layer
order is :data:`LAYERS`: each package may import only those listed before it (a lower
layer), as timm, detectron2 and SAM keep checkpoint loading below their models.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = 'mae_seg'
# Lowest first. Names in one tuple are peers: neither may import the other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ('version', 'errors', 'compat'),
    ('io',),
    ('models',),
    ('convert',),
    ('datasets', 'visualization'),
    ('engine',),
    ('runner',),
    ('apis', 'deploy'),
    ('__init__',),
)


@dataclass
class Graph:
    """Imports between the units of the package (a subpackage or a top-level module)."""

    lines: dict[str, int] = field(default_factory=dict)
    edges: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    hidden: list[str] = field(default_factory=list)


def unit_of(module: str) -> str:
    """``mae_seg.io.loading`` -> ``io``; ``mae_seg`` -> ``__init__``."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def imported_modules(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The ``mae_seg`` modules one import statement names, made absolute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split('.')[0] == PACKAGE]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split('.')
        base = '.'.join(base[: len(base) - node.level + (1 if is_package else 0)])
        if not node.module:  # from . import name: each name is a module of that package
            return [f'{base}.{alias.name}' for alias in node.names]
        target = f'{base}.{node.module}'
    else:
        target = node.module or ''
    return [target] if target.split('.')[0] == PACKAGE else []


def build_graph(root: Path) -> Graph:
    """Read every module of ``root/mae_seg`` (without importing it)."""
    graph = Graph()
    for path in sorted((root / PACKAGE).rglob('*.py')):
        module = module_name(path, root)
        unit = unit_of(module)
        text = path.read_text()
        graph.lines[unit] = graph.lines.get(unit, 0) + len(text.splitlines())
        tree = ast.parse(text, filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            for target in imported_modules(node, module, path.name == '__init__.py'):
                target_unit = unit_of(target)
                if id(node) not in top_level and not _under_type_checking(tree, node):
                    graph.hidden.append(f'{module}:{node.lineno} imports {target} in a function')
                if target_unit != unit:
                    graph.edges[(unit, target_unit)].append(f'{module}:{node.lineno}')
    return graph


def _under_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    for statement in tree.body:
        if isinstance(statement, ast.If) and 'TYPE_CHECKING' in ast.unparse(statement.test):
            if any(child is node for child in ast.walk(statement)):
                return True
    return False


def layer_of(unit: str) -> int | None:
    for rank, peers in enumerate(LAYERS):
        if unit in peers:
            return rank
    return None


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan's algorithm)."""
    successors = defaultdict(set)
    for source, target in graph.edges:
        successors[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(unit: str) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        for successor in sorted(successors[unit]):
            if successor not in index:
                visit(successor)
                low[unit] = min(low[unit], low[successor])
            elif successor in stack:
                low[unit] = min(low[unit], index[successor])
        if low[unit] == index[unit]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == unit:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for unit in sorted(graph.lines):
        if unit not in index:
            visit(unit)
    return groups


def problems(graph: Graph) -> list[str]:
    """Cycles, imports against :data:`LAYERS`, units outside it, hidden imports."""
    found = [f'cycle: {" <-> ".join(group)}' for group in cycles(graph)]
    for unit in sorted(graph.lines):
        if layer_of(unit) is None:
            found.append(f'{unit}: not in the layer order (tools/analysis/import_graph.py LAYERS)')
    for (source, target), places in sorted(graph.edges.items()):
        source_rank, target_rank = layer_of(source), layer_of(target)
        if None not in (source_rank, target_rank) and target_rank >= source_rank:
            found.append(f'{source} imports {target}, not a lower layer: {", ".join(places)}')
    found.extend(graph.hidden)
    return found


def report(graph: Graph) -> str:
    def rank_key(unit: str) -> tuple[int, str]:
        rank = layer_of(unit)
        return (len(LAYERS) if rank is None else rank, unit)

    units = sorted(graph.lines, key=rank_key)
    lines = ['lines per package (lowest layer first):']
    lines += [f'  {unit:<14} {graph.lines[unit]:>6}' for unit in units]
    lines.append(f'  {"total":<14} {sum(graph.lines.values()):>6}')
    lines.append('imports between packages (package -> what it imports, number of statements):')
    for unit in units:
        targets = sorted(
            (
                (target, len(places))
                for (source, target), places in graph.edges.items()
                if source == unit
            ),
            key=lambda item: rank_key(item[0]),
        )
        listed = ', '.join(f'{target} ({count})' for target, count in targets) or '-'
        lines.append(f'  {unit:<14} -> {listed}')
    found = problems(graph)
    lines.append(f'problems: {len(found)}')
    lines += [f'  {problem}' for problem in found]
    return '\n'.join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument('--check', action='store_true', help='exit 1 on any problem')
    args = parser.parse_args()
    if not (args.root / PACKAGE).is_dir():
        print(f'import_graph.py: error: {args.root / PACKAGE} is not a directory', file=sys.stderr)
        return 2
    graph = build_graph(args.root)
    print(report(graph))
    return 1 if args.check and problems(graph) else 0


if __name__ == '__main__':
    sys.exit(main())
