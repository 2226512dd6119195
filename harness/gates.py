"""The pre-commit gate: the configs a commit changes, checked in the working tree.

pre-commit calls ``python -m epam_guard.gates [options] FILE...`` with the
staged files its ``files:`` pattern selects. Each changed config is checked
with ``epam-guard check CONFIG --import-path ROOT --tier fast``, ROOT being
the repository (pre-commit runs hooks from its root), so the working tree's
model code is imported before any installed copy. A change to model code
checks the configs named with ``--config`` (the guard's default config when
none is named). Every check runs, one after another; the exit status is the
worst of theirs, so one failing config fails the commit.

Only the standard library is imported here: deciding that a README change
needs nothing takes milliseconds.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Folders whose ``.py`` files are configs (MMAction2's layout, and this repository's).
CONFIG_DIRS = ('configs', 'config')
#: Config parts other configs inherit (``_base_``): not checkable on their own.
BASE_DIRS = ('_base_',)
#: What every gate run asks of the guard: the contract checks, on CPU, in seconds.
GUARD_OPTIONS = ('--tier', 'fast', '--device', 'cpu', '--size', 'tiny')


@dataclass(frozen=True)
class Invocation:
    """One guard run: the config it checks (None: the guard's default) and why."""

    config: str | None
    reason: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f'epam-guard: {self.config or "the default config"} ({self.reason})'


def _parts(filename: str) -> tuple[str, ...]:
    return PurePosixPath(filename.replace('\\', '/')).parts


def is_config(filename: str) -> bool:
    """A ``.py`` file under a ``configs/`` folder that is a whole config (not a base part)."""
    parts = _parts(filename)
    return (filename.endswith('.py') and parts[-1] != '__init__.py'
            and any(part in CONFIG_DIRS for part in parts[:-1])
            and not any(part in BASE_DIRS for part in parts[:-1]))


def is_code(filename: str, code_dirs: Sequence[str] | None) -> bool:
    """Python that is not a whole config: under one of ``code_dirs`` (any folder when None)."""
    if not filename.endswith('.py') or is_config(filename):
        return False
    if code_dirs is None:
        return True
    parts = _parts(filename)
    return any(parts[:len(_parts(d))] == _parts(d) for d in code_dirs)


def guard_argv(config: str | None, root: Path, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The guard's command line for one config, run by this interpreter."""
    target = [config] if config else []
    return (sys.executable, '-m', 'epam_guard', 'check', *target,
            '--import-path', str(root), *GUARD_OPTIONS, *extra)


def plan(filenames: Iterable[str], configs: Sequence[str] = (),
         code_dirs: Sequence[str] | None = None, root: Path | None = None,
         extra: Sequence[str] = ()) -> list[Invocation]:
    """The guard runs a set of changed files calls for, in order, each config once.

    Args:
        filenames: changed files, relative to ``root`` (as pre-commit passes them).
        configs: the configs model-code changes are checked with (``--config``).
        code_dirs: folders whose Python counts as model code; None: any Python
            file that is not a config (the hook's ``files:`` already chose them).
        root: the repository root, put first on the import path.
        extra: more guard options (``--label-api gt_labels``, ...).
    """
    root = Path.cwd() if root is None else root
    runs: dict[str | None, str] = {}
    code: list[str] = []
    for name in dict.fromkeys(filenames):
        if is_config(name):
            if (root / name).is_file():  # a deleted config has nothing left to check
                runs.setdefault(name, 'changed')
        elif is_code(name, code_dirs):
            code.append(name)
    if code:
        more = f', +{len(code) - 1} more' if len(code) > 1 else ''
        targets: list[str | None] = [*configs] or [None]
        for config in targets:
            runs.setdefault(config, f'model code changed: {code[0]}{more}')
    return [Invocation(config, reason, guard_argv(config, root, extra))
            for config, reason in runs.items()]


def run(invocations: Sequence[Invocation], root: Path) -> int:
    """Run each guard invocation; the worst exit status (0 when all pass or none ran)."""
    worst = 0
    for invocation in invocations:
        print(invocation, flush=True)
        worst = max(worst, subprocess.run(invocation.argv, cwd=root, check=False).returncode)
    return worst


def parser() -> argparse.ArgumentParser:
    """The gate's options (the hooks' ``args:``) and the changed files."""
    p = argparse.ArgumentParser(
        prog='python -m epam_guard.gates',
        description='Check the configs a commit changes (and, when model code changes, the '
                    'configs named with --config) with the fast tier of epam-guard, importing '
                    'the working tree first.')
    p.add_argument('files', nargs='*', metavar='FILE', help='changed files (from pre-commit)')
    p.add_argument('--config', action='append', default=[], metavar='PATH',
                   help='a config checked when model code changes (repeatable; default: the '
                        "guard's default config)")
    p.add_argument('--code', action='append', metavar='DIR',
                   help='a folder of model code (repeatable; default: every Python file '
                        'given that is not a config)')
    p.add_argument('--root', type=Path, default=None,
                   help='the repository root, put first on the import path (default: the '
                        'current folder, where pre-commit runs hooks)')
    p.add_argument('--guard-args', default='', metavar='ARGS',
                   help="more epam-guard check options, one string ('--label-api gt_labels')")
    p.add_argument('--dry-run', action='store_true',
                   help='print the guard command lines instead of running them')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Map the changed files to guard runs, run them, exit non-zero if any fails."""
    args = parser().parse_args(argv)
    root = (args.root or Path.cwd()).resolve()
    invocations = plan(args.files, args.config, args.code, root, shlex.split(args.guard_args))
    if args.dry_run:
        for invocation in invocations:
            print(shlex.join(invocation.argv))
        return 0
    return run(invocations, root)


if __name__ == '__main__':
    sys.exit(main())
