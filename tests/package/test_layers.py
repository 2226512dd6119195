"""The package's layers: no import runs back up a layer, and no module imports itself
through others. Read from the source with ``ast`` (nothing is imported), lazy imports
inside functions included: a lazy import is a dependency all the same. Imports under
``if TYPE_CHECKING:`` are left out: they are never executed, only read by type checkers.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / 'harness'
PACKAGE = 'epam_guard'
#: Lowest first. A module may import its own layer and those below it. Top-level modules
#: and the ``bisect`` package are the front ends.
LAYERS = ('contract', 'report', 'probe', 'model', 'checks', 'trace', 'run', 'front')


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join([PACKAGE, *parts])


def layer_of(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else 'front'


def executed(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and 'TYPE_CHECKING' in ast.unparse(node.test):
            pending += node.orelse
            continue
        pending += ast.iter_child_nodes(node)
    return nodes


def imports(root: Path) -> dict[str, set[str]]:
    """Each module of the package under ``root`` -> the package's modules it imports."""
    files = {module_name(root, path): path for path in sorted(root.rglob('*.py'))}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == '__init__.py' else module.rpartition('.')[0]
        found: set[str] = set()
        for node in executed(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split('.')[:len(package.split('.')) - node.level + 1]
                    target = '.'.join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ''
                for alias in node.names:  # ``from . import state`` names a module
                    name = f'{target}.{alias.name}'
                    found.add(name if name in files else target)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[module] = {name for name in found if name in files and name != module}
    return graph


def upward(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for each import from a lower layer to a higher one."""
    rank = {name: index for index, name in enumerate(LAYERS)}
    return [f'{module} ({layer_of(module)}) -> {target} ({layer_of(target)})'
            for module, targets in sorted(graph.items()) for target in sorted(targets)
            if rank[layer_of(module)] < rank[layer_of(target)]]


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def test_no_import_runs_back_up_a_layer():
    assert upward(imports(HARNESS)) == []


def test_no_import_loop():
    assert loops(imports(HARNESS)) == []


def test_a_check_reads_only_the_contract_the_model_probes_and_results():
    graph = imports(HARNESS)
    allowed = ('epam_guard.contract', 'epam_guard.probe', 'epam_guard.model',
               'epam_guard.checks', 'epam_guard.report.result')
    assert [f'{module} -> {target}' for module, targets in sorted(graph.items())
            if layer_of(module) == 'checks' for target in sorted(targets)
            if not target.startswith(allowed)] == []


def test_the_contract_imports_no_framework_at_module_level():
    heavy = ('torch', 'mmengine', 'mmcv', 'mmaction', 'numpy')
    found = []
    for path in sorted((HARNESS / 'contract').glob('*.py')):
        for node in ast.parse(path.read_text()).body:  # module level only
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            found += [f'{path.name}: {name}' for name in names
                      if name.split('.')[0] in heavy]
    assert found == []


def test_every_module_belongs_to_a_layer_and_each_subpackage_says_its_job():
    subpackages = sorted(p.parent.name for p in HARNESS.glob('*/__init__.py'))
    assert set(subpackages) - {'bisect'} == set(LAYERS) - {'front'}
    for name in subpackages:
        doc = ast.get_docstring(ast.parse((HARNESS / name / '__init__.py').read_text()))
        assert doc and ('Layer' in doc or 'front end' in doc), name


def plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / PACKAGE


@pytest.fixture
def broken(tmp_path: Path) -> dict[str, set[str]]:
    """A package with the two defects the layout forbids: ``model`` importing ``run``
    lazily, and ``cli`` and ``launcher`` importing each other."""
    return imports(plant(tmp_path, {
        '__init__.py': '',
        'cli.py': 'from .run import launcher\n',
        'model/__init__.py': '', 'run/__init__.py': '',
        'model/context.py': 'def build():\n    from ..run.engine import run_checks\n'
                            '    from .passes import run_pass\n',
        'run/engine.py': 'from ..model.context import build\n',
        'model/passes.py': 'from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n'
                           '    from .context import build\n',
        'run/launcher.py': 'from .. import cli\nfrom .engine import run_checks\n',
    }))


def test_an_upward_import_is_named_with_both_modules(broken):
    assert upward(broken) == ['epam_guard.model.context (model) -> epam_guard.run.engine (run)',
                              'epam_guard.run.launcher (run) -> epam_guard.cli (front)']


def test_a_loop_is_named_with_every_module_in_it(broken):
    assert loops(broken) == [['epam_guard.cli', 'epam_guard.run.launcher'],
                             ['epam_guard.model.context', 'epam_guard.run.engine']]
