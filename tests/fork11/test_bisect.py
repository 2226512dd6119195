"""``epam-guard bisect`` on a dozen-commit repository of the fork fixture (:mod:`bisect_repo`).

Each guard run starts the model in a fresh process (a few seconds), and a
bisection is six of them, so these tests are ``slow``. They prove that the
breaking commit is found within ceil(log2(commits)) + 2 guard runs, that the
commit that cannot be imported is skipped and counted, that the user's
repository (files, ``.git``, status, worktrees, stash, their own bisection)
is byte-identical afterwards, and that Ctrl-C leaves nothing behind.

``git bisect`` needs at most ceil(log2(commits)) tests when every commit can
be built; a skipped commit can cost one more, depending on which neighbour git
picks next. The fixture's dates are fixed, so its hashes and the bisection are
the same on every run: good, bad, the skipped commit, its fix, two more.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bisect_repo
import psutil
import pytest

from epam_guard.report.console import EXIT_OK

pytestmark = pytest.mark.slow

#: Options every run here takes: the check the breaking commit fails, small batches.
OPTIONS = ('configs/fork_ntu60.py', '--import-path', 'myfork', '--only', 'structure',
           '--batch-size', '2')


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(['git', *args], cwd=repo, capture_output=True, text=True)


def state(repo: Path) -> dict[str, Any]:
    """Every file under ``repo`` (``.git`` included) by content, and what git says of it."""
    files = {str(path.relative_to(repo)): hashlib.sha256(path.read_bytes()).hexdigest()
             for path in sorted(repo.rglob('*')) if path.is_file()}
    folders = sorted(str(p.relative_to(repo)) for p in repo.rglob('*') if p.is_dir())
    said = {name: _git(repo, *args).stdout for name, args in {
        'worktrees': ('worktree', 'list', '--porcelain'), 'stash': ('stash', 'list'),
        'bisect': ('bisect', 'log'), 'head': ('rev-parse', 'HEAD'),
        'refs': ('for-each-ref',)}.items()}
    return {'files': files, 'folders': folders, **said}


@pytest.fixture
def user_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """The repository as a user has it: a stash, staged and unstaged edits, an untracked
    file, and a bisection of their own under way."""
    repo = tmp_path / 'fork'
    commits = bisect_repo.build(repo)
    (repo / 'README.md').write_text('# EPAM fork\n\nwork in progress\n')
    _git(repo, 'stash')
    (repo / 'notes.txt').write_text('untracked\n')
    (repo / 'CHANGELOG.md').write_text('staged\n')
    _git(repo, 'add', 'CHANGELOG.md')
    (repo / 'README.md').write_text('unstaged\n')
    _git(repo, 'bisect', 'start', '--no-checkout', commits[-1], commits[-4])
    return repo, commits


def _subjects(repo: Path, commits: list[str]) -> dict[str, str]:
    return {_git(repo, 'show', '-s', '--format=%s', c).stdout.strip(): c for c in commits}


def test_bisect_finds_the_breaking_commit_skips_the_unbuildable_one_and_touches_nothing(
        user_repo, tmp_path, capsys, monkeypatch):
    from epam_guard.cli import main

    repo, commits = user_repo
    status = _git(repo, 'status', '--porcelain=v2', '--branch').stdout
    before = state(repo)
    monkeypatch.chdir(repo)
    report = tmp_path / 'bisect.json'
    code = main(['bisect', '--good', commits[0], '--bad', 'main', *OPTIONS,
                 '--json', str(report)])
    printed = capsys.readouterr().out
    assert code == EXIT_OK, printed
    data = json.loads(report.read_text())
    by_subject = _subjects(repo, commits)

    first = data['first_bad']
    assert first['commit'] == by_subject[bisect_repo.BREAKING], printed
    assert first['subject'] == bisect_repo.BREAKING
    assert first['date'].startswith('2026-03-')
    assert first['files'] == [f'M {bisect_repo.BACKBONE}']
    broken = {b['section']: b for b in first['broken']}
    assert '3' in broken and broken['3']['check'] == 'structure'
    assert any('the backbone returned 2 value(s)' in f['message']
               for f in broken['3']['findings'])
    assert broken['3']['at_last_good'].startswith('PASS')
    assert broken['3']['last_good'] == commits[commits.index(first['commit']) - 1]

    # The commit with the import typo is skipped, counted and said why; its fix is tested.
    assert [s['commit'] for s in data['skipped']] == [by_subject[bisect_repo.UNBUILDABLE]]
    assert "No module named 'epam_fork.hierachy'" in data['skipped'][0]['reason']
    assert 'skipped 1 commit(s) that could not be checked' in printed
    assert data['guard_runs'] <= math.ceil(math.log2(len(commits))) + 2, printed
    tested = [t['commit'] for t in data['tested']]
    assert len(tested) == len(set(tested)) == data['guard_runs']

    assert 'first bad commit' in printed and bisect_repo.BREAKING in printed
    assert '[CONTRACT §3 backbone 6-tuple]' in printed
    assert state(repo) == before
    assert _git(repo, 'status', '--porcelain=v2', '--branch').stdout == status


def test_a_bad_revision_that_fails_nothing_new_exits_1(user_repo, capsys, monkeypatch):
    from epam_guard.cli import main

    repo, commits = user_repo
    monkeypatch.chdir(repo)
    code = main(['bisect', '--good', commits[0], '--bad', commits[3], *OPTIONS])
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert 'fails nothing that passed at --good' in printed


def _guard_processes(root: Path) -> list[psutil.Process]:
    """Processes whose working folder or command line is under ``root``."""
    found = []
    for proc in psutil.process_iter(['cwd', 'cmdline']):
        text = ' '.join([proc.info.get('cwd') or '', *(proc.info.get('cmdline') or [])])
        if str(root) in text:
            found.append(proc)
    return found


#: Seconds the Ctrl-C test waits for the step at --bad to begin: a net for a run that never
#: gets there, not a measure of how fast it does (a loaded machine takes what it takes).
STEP_WAIT = 600


def test_ctrl_c_stops_the_run_and_leaves_nothing_behind(user_repo, tmp_path):
    """Ctrl-C once the step at --bad has begun (the log it opens as it starts the guard is
    the sign), with the whole bisection still ahead: nothing is left of the run."""
    repo, commits = user_repo
    before = state(repo)
    temp = tmp_path / 'temp'
    temp.mkdir()
    env = {**os.environ, 'TMPDIR': str(temp), 'PYTHONUNBUFFERED': '1'}
    process = subprocess.Popen(
        [sys.executable, '-m', 'epam_guard.cli', 'bisect', '--good', commits[0], '--bad',
         'main', *OPTIONS], cwd=repo, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        begun: list[Path] = []
        deadline = time.monotonic() + STEP_WAIT
        while not begun and process.poll() is None and time.monotonic() < deadline:
            begun = list(temp.glob(f'epam-guard-bisect-*/steps/{commits[-1]}.log'))
            time.sleep(0.05)
        assert begun, 'the step at --bad never began'
        worktree = begun[0].parent.parent / 'tree'
        assert str(worktree) in _git(repo, 'worktree', 'list').stdout
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, out + err
    assert '  GOOD' in out  # the run at --good was done; the one at --bad was cut short
    assert 'interrupted' in err and 'Traceback' not in err
    assert list(temp.iterdir()) == []
    assert _guard_processes(temp) == []
    assert state(repo) == before
