"""Every command line README.md shows (its ``bash`` blocks) is one this project accepts.

Each block is read as a shell would split it (continuation lines joined,
comments dropped, ``&&`` separating commands). ``epam-guard`` lines are
parsed by the real parser, those that run no model (``--list``,
``--version``) are run; ``epam-guard-gate`` lines run with ``--dry-run``
when they say so; ``tox -e ENV`` names an environment of ``tox.ini``;
``pytest -m EXPR`` uses declared markers. A README command of any other
kind fails the test until it is given a check here.

Placeholders the README shows for the user's own paths are replaced by real
ones (``PLACEHOLDERS``) so that options whose values are checked when
parsed (``--import-path`` folders) can be.
"""
from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest

from epam_guard import gates
from epam_guard.cli import build_parser, main
from epam_guard.report.console import EXIT_OK

REPO = Path(__file__).resolve().parents[2]
README = (REPO / 'README.md').read_text('utf-8')
#: The user's paths in README examples -> paths of this repository that stand in for them.
PLACEHOLDERS = {'~/src/my-fork': 'tests/fork11/myfork'}
#: Commands that install, not run, the project: nothing to check beyond their words.
INSTALLERS = {'pip'}


def commands(text: str) -> list[list[str]]:
    """The commands of every ``bash`` block of ``text``, each as its words."""
    found = []
    for block in re.findall(r'```bash\n(.*?)```', text, flags=re.S):
        joined = block.replace('\\\n', ' ')
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index('&&') if '&&' in words else len(words)
                found.append([PLACEHOLDERS.get(w, w) for w in words[:cut]])
                words = words[cut + 1:]
    return found


def guard_words(words: list[str]) -> list[str] | None:
    """The arguments of ``epam-guard`` in a command (direct, under ``srun`` or ``torchrun``)."""
    if 'epam-guard' in words:
        return words[words.index('epam-guard') + 1:]
    if words[:1] == ['torchrun'] and 'epam_guard.cli' in words:
        return words[words.index('epam_guard.cli') + 1:]
    return None


def declared_markers() -> set[str]:
    import tomllib

    config = tomllib.loads((REPO / 'pyproject.toml').read_text('utf-8'))
    markers = config['tool']['pytest']['ini_options']['markers']
    return {marker.split(':')[0].strip() for marker in markers}


def tox_envs() -> set[str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / 'tox.ini')
    return {section.split(':', 1)[1] for section in parser.sections()
            if section.startswith('testenv:')}


ALL = commands(README)


def test_the_readme_shows_commands_of_every_kind_checked_here():
    kinds = {words[0] for words in ALL}
    assert kinds <= {'epam-guard', 'epam-guard-gate', 'torchrun', 'srun', 'tox', 'pytest',
                     *INSTALLERS}, kinds
    assert sum(guard_words(words) is not None for words in ALL) >= 10


@pytest.mark.parametrize('words', [w for w in ALL if guard_words(w) is not None],
                         ids=shlex.join)
def test_each_epam_guard_command_line_parses(words, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(REPO)
    argv = guard_words(words)
    assert argv is not None
    if argv[0] == 'bisect':
        # The README runs bisect inside the user's repository: its folders are relative to it.
        for flag, value in zip(argv, argv[1:]):
            if flag == '--import-path':
                (tmp_path / value).mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(tmp_path)
    if '--list' in argv or '--version' in argv:
        assert main(argv) == EXIT_OK
        assert capsys.readouterr().out.strip()
        return
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f'{shlex.join(words)}: {capsys.readouterr().err.strip()} (exit {exc.code})')


@pytest.mark.parametrize('words', [w for w in ALL if w[0] == 'epam-guard-gate'],
                         ids=shlex.join)
def test_each_gate_command_line_runs(words, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    gates.parser().parse_args(words[1:])
    if '--dry-run' in words:
        assert gates.main(words[1:]) == 0
        planned = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
        assert planned
        for line in planned:  # the guard command lines the hook would run parse too
            assert line[1:3] == ['-m', 'epam_guard']
            build_parser().parse_args(line[3:])


@pytest.mark.parametrize('words', [w for w in ALL if w[0] == 'tox'], ids=shlex.join)
def test_each_tox_command_names_an_environment(words):
    assert words[1] == '-e' and words[2] in tox_envs(), words


@pytest.mark.parametrize('words', [w for w in ALL if w[0] == 'pytest'], ids=shlex.join)
def test_each_pytest_command_selects_declared_markers(words):
    expression = words[words.index('-m') + 1]
    names = set(re.findall(r'[A-Za-z_]\w*', expression)) - {'not', 'and', 'or'}
    assert names and names <= declared_markers(), (expression, declared_markers())


def test_the_checks_list_of_the_readme_and_docs_is_the_top_level_option(capsys):
    """README and docs/CONTRACT.md say ``epam-guard --list``; it prints the registry."""
    docs = (REPO / 'docs' / 'CONTRACT.md').read_text('utf-8')
    assert '`epam-guard --list`' in README and '`epam-guard --list`' in docs
    assert main(['--list']) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[0].split()[0] == 'structure'


#: What torch prints for the frameworks' scripted functions (torch 2.10 and later).
JIT_MESSAGES = ('`torch.jit.script` is deprecated. Please switch to `torch.compile` or '
                '`torch.export`.', '`torch.jit.interface` is deprecated. Please use '
                '`torch.compile` instead.')


def test_the_readme_filters_and_the_plugins_silence_the_same_torch_jit_warnings():
    from epam_guard.plugin import FRAMEWORK_DEPRECATIONS

    block = next(b for b in README.split('```') if 'filterwarnings =' in b)
    shown = [line.strip().split(':') for line in block.splitlines() if 'ignore:' in line]
    assert [category for _, _, category in shown] == ['DeprecationWarning'] * 2
    for message in JIT_MESSAGES:
        assert any(re.match(pattern, message) for _, pattern, _ in shown), message
        assert re.match(FRAMEWORK_DEPRECATIONS, message)
