"""One step of ``epam-guard bisect``: check the commit checked out here, tell ``git bisect``.

``git bisect run`` starts ``python -m epam_guard.bisect.step PLAN`` in the
temporary worktree with the commit under test checked out. The step runs
``epam-guard check`` (supervised, as always) on that worktree's config and
model code, writes its verdict to ``PLAN``'s folder as ``<commit>.json``, and
answers with the exit status ``git bisect run`` reads: 0 good, 1 bad, 125
skip (the config cannot be loaded or the model cannot be built for a reason
that is no contract rule), 255 stop (the run was interrupted).

The plan (JSON, written by :mod:`epam_guard.bisect.search`): ``check_args`` (the
options passed on), ``config`` and ``import_paths`` (absolute, or relative to
the worktree), ``baseline`` (``[check, section]`` pairs already failing at
``--good``) and ``targets`` (the pairs that make a commit bad; None: any new one).
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .verdict import BAD, GOOD, MARK, SKIP, STOP, classify


def _path(text: str, root: Path) -> str:
    path = Path(text)
    return str(path if path.is_absolute() else root / path)


def run_step(plan: dict[str, Any], root: Path) -> dict[str, Any]:
    """Check the commit checked out at ``root`` as ``plan`` says; returns the verdict."""
    from ..cli import main as guard

    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True,
                            text=True, check=True).stdout.strip()
    steps = Path(plan['steps'])
    report_path = steps / f'{commit}.report.json'
    argv = ['check', _path(plan['config'], root), *plan['check_args'],
            '--json', str(report_path)]
    for folder in plan['import_paths']:
        argv += ['--import-path', _path(folder, root)]
    started = time.perf_counter()
    new: list[tuple[str, str]]
    with open(steps / f'{commit}.log', 'w') as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        code = guard(argv)
    seconds = time.perf_counter() - started
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    if report is None and code == 2:
        # Arguments refused before the model ran: at this commit the config or an
        # import folder does not exist, so the commit cannot be checked.
        log_text = (steps / f'{commit}.log').read_text().strip().splitlines()
        reason = log_text[-1] if log_text else 'the guard refused the arguments'
        status, new = 'skip', []
    else:
        status, new, reason = classify(report, {tuple(p) for p in plan['baseline']},
                                       None if plan['targets'] is None
                                       else {tuple(p) for p in plan['targets']})
    if code >= 128:
        status, reason = 'stop', f'interrupted (exit {code})'
    reason = reason.replace(f'{root}/', '')  # paths as in the repository, not the worktree
    verdict = {'commit': commit, 'status': status, 'new': new, 'reason': reason,
               'exit_status': code, 'seconds': seconds,
               'results': (report or {}).get('results', []),
               'fatal': (report or {}).get('fatal')}
    (steps / f'{commit}.json').write_text(json.dumps(verdict, indent=2, default=str) + '\n')
    return verdict


def main(argv: list[str]) -> int:
    """``python -m epam_guard.bisect.step PLAN``: one tested commit, as an exit status."""
    # ``-m`` put the worktree first on the import path; the model code is imported
    # through --import-path alone, in the guard's own child process.
    here = str(Path.cwd())
    sys.path[:] = [entry for entry in sys.path if entry not in ('', here)]
    plan = json.loads(Path(argv[0]).read_text())
    try:
        verdict = run_step(plan, Path.cwd())
    except KeyboardInterrupt:
        return STOP
    print(f'{MARK} {verdict["commit"]} {verdict["status"]}', flush=True)
    return {'good': GOOD, 'bad': BAD, 'skip': SKIP}.get(verdict['status'], STOP)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
