"""The pre-commit gate: changed files -> guard runs on the working tree.

The mapping is tested in milliseconds; one real, tiny guard run proves that a
broken ``in_channels`` in a repository's ``configs/epam_ntu60.py`` fails it.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from epam_guard import gates

REPO = Path(__file__).resolve().parents[2]
DEFAULT = 'configs/epam_ntu60.py'
OURS = ['--config', DEFAULT, '--code', 'epam', '--code', 'harness']


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A repository root with two configs and a base part."""
    for name in (DEFAULT, 'configs/other.py', 'configs/_base_/model.py'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text('x = 1\n')
    return tmp_path


def configs_of(invocations: list[gates.Invocation]) -> list[str | None]:
    return [i.config for i in invocations]


def test_a_readme_change_runs_nothing(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gates.plan(['README.md', 'docs/CONTRACT.md'], [DEFAULT], ['epam'], tree) == []
    assert gates.main(['README.md', '--root', str(tree), *OURS]) == 0
    assert capsys.readouterr().out == ''


def test_each_changed_config_is_checked_in_the_working_tree(tree: Path) -> None:
    runs = gates.plan(['configs/other.py', DEFAULT, 'configs/other.py'], [], ['epam'], tree)
    assert configs_of(runs) == ['configs/other.py', DEFAULT]
    argv = runs[0].argv
    assert argv[:4] == (sys.executable, '-m', 'epam_guard', 'check')
    assert argv[4] == 'configs/other.py'
    assert argv[argv.index('--import-path') + 1] == str(tree)
    assert argv[argv.index('--tier') + 1] == 'fast'
    assert '--skip' not in argv


@pytest.mark.parametrize('changed', ['epam/head.py', 'harness/checks/routing.py'])
def test_model_or_guard_code_checks_the_named_config(tree: Path, changed: str) -> None:
    runs = gates.plan([changed, 'README.md'], [DEFAULT], ['epam', 'harness'], tree)
    assert configs_of(runs) == [DEFAULT]
    assert changed in runs[0].reason


def test_code_outside_the_code_folders_runs_nothing(tree: Path) -> None:
    assert gates.plan(['tests/unit/test_x.py', 'configs/__init__.py'], [DEFAULT],
                      ['epam', 'harness'], tree) == []


def test_a_changed_config_that_is_also_named_runs_once(tree: Path) -> None:
    runs = gates.plan([DEFAULT, 'epam/head.py'], [DEFAULT], ['epam'], tree)
    assert configs_of(runs) == [DEFAULT]


def test_base_parts_and_unnamed_code_check_the_named_configs(tree: Path) -> None:
    runs = gates.plan(['configs/_base_/model.py'], ['configs/other.py'], None, tree)
    assert configs_of(runs) == ['configs/other.py']
    # Without --config, model code is checked with the guard's default config.
    runs = gates.plan(['mmaction/models/heads/my_head.py'], [], None, tree)
    assert configs_of(runs) == [None]
    assert 'check' in runs[0].argv and '--import-path' in runs[0].argv


def test_a_deleted_config_is_not_checked(tree: Path) -> None:
    assert gates.plan(['configs/gone.py'], [], None, tree) == []


def test_guard_args_pass_through(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gates.main([DEFAULT, '--root', str(tree), '--dry-run',
                       '--guard-args', '--label-api gt_labels']) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith('--label-api gt_labels') and DEFAULT in line


def _hooks(path: str) -> list[dict]:
    data = yaml.safe_load((REPO / path).read_text('utf-8'))
    hooks = data if isinstance(data, list) else [h for r in data['repos'] for h in r['hooks']]
    return [h for h in hooks if h['id'].startswith('epam-guard')]


@pytest.mark.parametrize('path', ['.pre-commit-hooks.yaml', '.pre-commit-config.yaml'])
def test_hooks_run_the_gate_on_the_changed_files(path: str) -> None:
    hooks = _hooks(path)
    assert hooks
    for hook in hooks:
        assert hook['entry'] == 'epam-guard-gate'
        assert hook['pass_filenames'] is True
        files = re.compile(hook['files'])
        assert files.search(DEFAULT) and files.search('epam/head.py')
        assert not files.search('README.md')


def test_this_repository_checks_its_own_default_config() -> None:
    (hook,) = _hooks('.pre-commit-config.yaml')
    args = hook['args']
    assert args[args.index('--config') + 1] == DEFAULT and (REPO / DEFAULT).is_file()
    runs = gates.plan(['harness/run/engine.py'], [DEFAULT], ['epam', 'harness'], REPO)
    assert configs_of(runs) == [DEFAULT]


@pytest.mark.slow  # the gate starts epam-guard for real; its model fails the size probe,
# which then tries the config's own clip lengths (seconds of CPU per pass)
def test_a_broken_in_channels_in_the_working_tree_fails(tmp_path: Path,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / DEFAULT
    config.parent.mkdir()
    text = (REPO / DEFAULT).read_text('utf-8')
    assert 'in_channels=[432, 216]' in text
    config.write_text(text.replace('in_channels=[432, 216]', 'in_channels=[400, 216]'))
    # One tiny guard call: the structure check alone is enough to see the break.
    status = gates.main([DEFAULT, '--root', str(tmp_path), *OURS,
                         '--guard-args', '--only structure'])
    out = capfd.readouterr().out
    assert status == 1, out
    assert f'epam-guard: {DEFAULT} (changed)' in out
    assert 'FAIL  structure' in out and '432' in out
