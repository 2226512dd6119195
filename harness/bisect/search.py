"""``epam-guard bisect``: the first commit that broke the contract, found by ``git bisect run``.

Everything happens in a temporary ``git worktree`` of the user's repository
(detached, hooks off), so the user's checkout, branch, index, stash and
bisect state are never touched; the worktree, its bookkeeping under
``.git/worktrees`` and every file the guard writes are removed at the end,
after Ctrl-C too. The guard runs once at ``--good`` (the baseline: what already
fails there does not count) and once at ``--bad`` (what fails there that did
not at ``--good``: the same check with the same rule); then ``git bisect run``
tests the commits in between with :mod:`epam_guard.bisect.step`, which skips
(exit 125) a commit whose config or model cannot be built.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..contract.errors import GuardError
from .verdict import MARK

#: Seconds between refreshes of the progress line while a commit is checked.
TICK = 0.5
#: Seconds a step may take to stop on SIGTERM (its supervisor cleans up) before it is killed.
STOP_GRACE = 20.0
#: Environment variables that would point git at another repository than the one asked.
GIT_LOCATION = ('GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY',
                'GIT_ALTERNATE_OBJECT_DIRECTORIES', 'GIT_COMMON_DIR', 'GIT_PREFIX')


class BisectError(GuardError):
    """``bisect`` cannot run: not a git repository, an unknown revision, an unusable range."""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION}
    env['GIT_TERMINAL_PROMPT'] = '0'
    env['LC_ALL'] = 'C'  # git's messages are parsed below
    return env


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """``git -C cwd ARGS`` without hooks; stdout, stripped. A failure is a :class:`BisectError`."""
    done = subprocess.run(['git', '-c', 'core.hooksPath=/dev/null', *args], cwd=cwd,
                          capture_output=True, text=True, env=_env())
    if check and done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise BisectError(f'git {" ".join(args)}: {message[-1] if message else "failed"}')
    return done.stdout.strip()


@dataclass
class Commit:
    """A commit as the report names it."""

    hash: str
    subject: str
    date: str

    @classmethod
    def of(cls, repo: Path, rev: str) -> Commit:
        text = git(repo, 'show', '-s', '--format=%H%x00%s%x00%aI', rev)
        commit, subject, date = text.split('\x00')
        return cls(commit, subject, date)

    @property
    def short(self) -> str:
        return self.hash[:10]


@dataclass
class Plan:
    """What the user asked, resolved against the repository."""

    repo: Path
    good: str
    bad: str
    config: str
    import_paths: list[str]
    check_args: list[str]
    commits: int = 0


def resolve_plan(repo_arg: str | None, good: str, bad: str, config: str,
                 import_paths: list[str] | None, check_args: list[str]) -> Plan:
    """Check the repository and revisions; paths inside the repository become relative."""
    start = Path(repo_arg or '.').resolve()
    if not start.is_dir():
        raise BisectError(f'{start} is not a folder')
    top = git(start, 'rev-parse', '--show-toplevel', check=False)
    if not top:
        raise BisectError(f'{start} is not inside a git repository')
    repo = Path(top)
    hashes = []
    for name, rev in (('--good', good), ('--bad', bad)):
        found = git(repo, 'rev-parse', '--verify', '--quiet', f'{rev}^{{commit}}', check=False)
        if not found:
            raise BisectError(f'{name} {rev}: no such revision in {repo}')
        hashes.append(found)
    if hashes[0] == hashes[1]:
        raise BisectError(f'--good {good} and --bad {bad} are the same commit')
    ancestor = subprocess.run(['git', 'merge-base', '--is-ancestor', *hashes], cwd=repo,
                              env=_env(), capture_output=True)
    if ancestor.returncode != 0:
        raise BisectError(f'--good {good} is not an ancestor of --bad {bad}')
    commits = int(git(repo, 'rev-list', '--count', f'{hashes[0]}..{hashes[1]}'))

    def inside(path: str) -> str:
        resolved = Path(path).resolve()
        with contextlib.suppress(ValueError):
            return str(resolved.relative_to(repo))
        return str(resolved)

    folders = [inside(p) for p in import_paths] if import_paths else ['.']
    return Plan(repo, hashes[0], hashes[1], inside(config), folders, check_args, commits)


@dataclass
class Tested:
    """One guard run on one commit."""

    commit: Commit
    status: str
    new: list[tuple[str, str]]
    reason: str
    seconds: float
    results: list[dict[str, Any]]
    fatal: dict[str, Any] | None = None


@dataclass
class Outcome:
    """What a bisection found."""

    plan: Plan
    runs: list[Tested] = field(default_factory=list)
    first_bad: Commit | None = None
    candidates: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ''

    def verdict_of(self, commit: str) -> Tested | None:
        return next((run for run in self.runs if run.commit.hash == commit), None)


class Workspace:
    """A temporary folder with a detached worktree of ``repo``; :meth:`close` removes both."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.root = Path(tempfile.mkdtemp(prefix='epam-guard-bisect-'))
        self.tree = self.root / 'tree'
        self.steps = self.root / 'steps'
        self.steps.mkdir()
        common = Path(git(repo, 'rev-parse', '--git-common-dir'))
        self.worktrees = (common if common.is_absolute() else repo / common) / 'worktrees'
        self.had_worktrees = self.worktrees.exists()
        self.admin: Path | None = None
        self.process: subprocess.Popen | None = None

    def open(self, commit: str) -> None:
        git(self.repo, 'worktree', 'add', '--detach', '--quiet', str(self.tree), commit)
        admin = Path(git(self.tree, 'rev-parse', '--git-dir'))
        self.admin = admin if admin.is_absolute() else self.tree / admin

    def env(self) -> dict[str, str]:
        """The steps' environment: temporary files (the guard's too) under :attr:`root`."""
        env = _env()
        env['TMPDIR'] = str(self.root / 'tmp')
        (self.root / 'tmp').mkdir(exist_ok=True)
        return env

    def stop(self) -> None:
        """Ask the running ``git bisect run`` and its step to stop, then make sure."""
        from ..probe.processes import stop_tree

        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        import psutil

        with contextlib.suppress(psutil.Error):
            tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
            psutil.wait_procs(tree, timeout=STOP_GRACE)
        stop_tree(process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    def close(self) -> None:
        """Stop what runs, reset the bisection, remove the worktree and the folder."""
        self.stop()
        if self.admin is not None and self.tree.exists():
            git(self.tree, 'bisect', 'reset', '--quiet', check=False)
            git(self.repo, 'worktree', 'remove', '--force', str(self.tree), check=False)
        if self.admin is not None and self.admin.exists():
            shutil.rmtree(self.admin, ignore_errors=True)  # what remove left (a killed git)
        with contextlib.suppress(OSError):
            if not self.had_worktrees and not any(self.worktrees.iterdir()):
                self.worktrees.rmdir()
        shutil.rmtree(self.root, ignore_errors=True)


def _tested(workspace: Workspace, commit: str) -> Tested:
    data = json.loads((workspace.steps / f'{commit}.json').read_text())
    return Tested(Commit.of(workspace.repo, commit), data['status'],
                  [tuple(p) for p in data['new']], data['reason'], data['seconds'],
                  data['results'], data.get('fatal'))


def _step(workspace: Workspace, plan_file: Path, progress: Progress) -> Tested:
    """One step outside ``git bisect`` (at --good, at --bad), in the worktree as checked out."""
    workspace.process = subprocess.Popen(
        [sys.executable, '-m', 'epam_guard.bisect.step', str(plan_file)], cwd=workspace.tree,
        env=workspace.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    _wait(workspace.process, progress)
    workspace.process = None
    commit = git(workspace.tree, 'rev-parse', 'HEAD')
    if not (workspace.steps / f'{commit}.json').exists():
        raise BisectError(f'the guard wrote no verdict for {commit[:10]}')
    return _tested(workspace, commit)


def _write_plan(workspace: Workspace, plan: Plan, baseline: list[tuple[str, str]],
                targets: list[tuple[str, str]] | None) -> Path:
    path = workspace.root / 'plan.json'
    path.write_text(json.dumps({
        'steps': str(workspace.steps), 'config': plan.config,
        'import_paths': plan.import_paths, 'check_args': plan.check_args,
        'baseline': baseline, 'targets': targets}))
    return path


def _files(repo: Path, commit: str) -> list[str]:
    text = git(repo, 'diff-tree', '--no-commit-id', '--name-status', '-r', '--root', commit)
    return [' '.join(line.split('\t')) for line in text.splitlines() if line]


Progress = Callable[[str, Any], None]


def _bisect_lines(process: subprocess.Popen, progress: Progress) -> Iterator[str]:
    """``git bisect run``'s output, line by line; a ``tick`` while it is quiet."""
    import selectors

    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = b''
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            if not selector.select(timeout=TICK):
                progress('tick', None)
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            *lines, buffer = (buffer + chunk).split(b'\n')
            for line in lines:
                yield line.decode(errors='replace')
    if buffer:
        yield buffer.decode(errors='replace')


def _wait(process: subprocess.Popen, progress: Progress) -> None:
    while True:
        try:
            process.wait(timeout=TICK)
            return
        except subprocess.TimeoutExpired:
            progress('tick', None)


def bisect(plan: Plan, progress: Progress) -> Outcome:
    """Run the bisection ``plan`` describes; ``progress(kind, data)`` sees each step.

    Kinds: ``testing`` (``(short hash, 'good' | 'bad' | None)``), ``steps`` (steps
    left, as git estimates them), ``tested`` (a :class:`Tested`), ``tick`` (time passes).
    Raises :class:`BisectError` when the good commit cannot be checked.
    """
    started = time.perf_counter()
    outcome = Outcome(plan)
    workspace = Workspace(plan.repo)
    try:
        workspace.open(plan.good)
        progress('testing', (plan.good[:10], 'good'))
        good = _step(workspace, _write_plan(workspace, plan, [], None), progress)
        outcome.runs.append(good)
        progress('tested', good)
        if good.status == 'skip':
            raise BisectError(f'--good {plan.good[:10]} cannot be checked: {good.reason}')
        baseline = sorted(_pairs(good.results, good.fatal))
        git(workspace.tree, 'checkout', '--quiet', '--detach', plan.bad)
        progress('testing', (plan.bad[:10], 'bad'))
        bad = _step(workspace, _write_plan(workspace, plan, baseline, None), progress)
        outcome.runs.append(bad)
        progress('tested', bad)
        if bad.status == 'skip':
            raise BisectError(f'--bad {plan.bad[:10]} cannot be checked: {bad.reason}')
        if bad.status != 'bad':
            outcome.message = (f'--bad {plan.bad[:10]} fails nothing that passed at '
                               f'--good {plan.good[:10]}')
            return outcome
        plan_file = _write_plan(workspace, plan, baseline, bad.new)
        tested = {plan.good, plan.bad}
        first = git(workspace.tree, 'bisect', 'start', plan.bad, plan.good)
        _follow(first, progress)
        if 'is the first bad commit' not in first:
            workspace.process = subprocess.Popen(
                ['git', '-c', 'core.hooksPath=/dev/null', 'bisect', 'run', sys.executable,
                 '-m', 'epam_guard.bisect.step', str(plan_file)],
                cwd=workspace.tree, env=workspace.env(), stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True)
            output = []
            for line in _bisect_lines(workspace.process, progress):
                output.append(line)
                if line.startswith(MARK):
                    commit = line.split()[1]
                    if commit not in tested:
                        tested.add(commit)
                        run = _tested(workspace, commit)
                        outcome.runs.append(run)
                        progress('tested', run)
                else:
                    _follow(line, progress)
            workspace.process.wait()
            workspace.process = None
            first = '\n'.join(output)
        _conclude(outcome, workspace, first)
    finally:
        from ..run.supervisor import shielded

        outcome.seconds = time.perf_counter() - started
        with shielded():  # a second Ctrl-C must not leave a worktree behind
            workspace.close()
    return outcome


def _pairs(results: list[dict[str, Any]], fatal: dict[str, Any] | None) -> set[tuple[str, str]]:
    from .verdict import failing_pairs

    return failing_pairs({'results': results, 'fatal': fatal})


def _follow(text: str, progress: Progress) -> None:
    """Steps left (``Bisecting: ... (roughly 3 steps)``) and the commit (``[hash] subject``)."""
    for line in text.splitlines():
        if line.startswith('Bisecting:') and 'roughly' in line:
            steps = line.split('roughly', 1)[1].split()[0]
            progress('steps', int(steps) if steps.isdigit() else None)
        elif line.startswith('[') and ']' in line:
            progress('testing', (line[1:11], None))


def _conclude(outcome: Outcome, workspace: Workspace, output: str) -> None:
    repo = workspace.repo
    if 'is the first bad commit' in output:
        found = git(workspace.tree, 'rev-parse', 'refs/bisect/bad')
        outcome.first_bad = Commit.of(repo, found)
        outcome.files = _files(repo, found)
    elif 'could be any of' in output:
        after = output.split('could be any of:', 1)[1].splitlines()
        outcome.candidates = [line.strip() for line in after
                              if len(line.strip()) == 40 and all(
                                  c in '0123456789abcdef' for c in line.strip())]
        outcome.message = (f'the first bad commit could be any of {len(outcome.candidates)} '
                           'commits: the commits between them could not be built')
    else:
        tail = [line for line in output.splitlines() if line.strip()][-1:]
        outcome.message = f'git bisect ended without a first bad commit ({" ".join(tail)})'
