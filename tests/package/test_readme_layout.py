"""README's layout table names every top-level entry of the repository and every tests/
folder, and its "Where each rule is checked" table is the registry's
(``scripts/checks_table.py``), with a failing-variant test that really fails each check."""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
from test_contract_docs import load_script

from epam_guard.checks import CHECKS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / 'README.md').read_text('utf-8')
#: Tracked top-level files that need no row (they describe or configure git itself).
UNLISTED = {'README.md', '.gitignore'}


def layout_paths() -> set[str]:
    section = README.split('## Layout', 1)[1].split('\n### ', 1)[0]
    cells = [line.split('|')[1] for line in section.splitlines() if line.startswith('| `')]
    return {path.rstrip('/') for cell in cells for path in re.findall(r'`([^`]+)`', cell)}


def tracked() -> list[str]:
    return subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.split()


def test_every_top_level_entry_and_tests_folder_has_a_row():
    shown = layout_paths()
    files = tracked()
    top = {path.split('/')[0] for path in files} - UNLISTED
    folders = {'/'.join(path.split('/')[:2]) for path in files
               if path.startswith('tests/') and path.count('/') >= 2}
    assert top <= shown, sorted(top - shown)
    assert folders <= shown, sorted(folders - shown)


def test_the_rules_table_is_the_registry():
    module = load_script()
    head, begin, rest = README.partition(module.RULES_BEGIN)
    table, end, _ = rest.partition(module.RULES_END)
    assert begin and end, 'README.md lost the markers of the generated rules table'
    assert table.strip() == module.rules_table(), (
        'README.md and the check registry disagree: run python scripts/checks_table.py --write')


def test_every_check_names_where_it_is_checked():
    module = load_script()
    assert set(module.FAILING_TESTS) == set(CHECKS), 'name the failing-variant tests of each check'
    for name in CHECKS:
        assert (REPO / module.check_code(name)).is_file()


def failing_tests(path: Path, name: str) -> list[str]:
    """Test functions of ``path`` that run check ``name`` and assert it fails."""
    tree = ast.parse(path.read_text('utf-8'))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith('test_'):
            body = ast.get_source_segment(path.read_text('utf-8'), node) or ''
            runs = f"'{name}'" in body or f'{name}.check' in body or path.stem.endswith(
                f'{name}_check')
            fails = re.search(r"Status\.FAIL|'fail'|FAIL\b|\.ok\b|\bfail(ing|ed)\(", body)
            if runs and fails:
                found.append(node.name)
    return found


@pytest.mark.parametrize('name', list(CHECKS))
def test_each_named_test_file_fails_its_check(name):
    for relative in load_script().FAILING_TESTS[name]:
        assert failing_tests(REPO / relative, name), (name, relative)
