"""The ``epam-guard bisect`` subcommand: its options, its progress lines and its report.

Exit status: 0 a first bad commit was found, 1 none was (``--bad`` fails
nothing that passed at ``--good``, or the unbuildable commits leave several
candidates), 2 unusable arguments (not a git repository, an unknown revision,
a ``--good`` that cannot be checked), 128+N when stopped by signal N.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..options import OPTIONS, add_options, output_file

#: Shared options that mean nothing to a bisection (or that it sets itself).
NOT_FORWARDED = ('launcher', 'import-path')


def add_parser(commands: Any) -> None:
    """Declare ``bisect`` on the CLI's subparsers."""
    sub = commands.add_parser(
        'bisect', help='find the first commit that broke the contract (git bisect run in a '
                       'temporary worktree; the fast tier unless --tier/--only say otherwise)')
    sub.add_argument('config', nargs='?', default=None,
                     help='MMEngine config; inside the repository it is read at each commit '
                          '(default: the packaged configs/epam_ntu60.py)')
    sub.add_argument('--good', required=True, metavar='REV',
                     help='a revision where the checks pass (their failures there do not count)')
    sub.add_argument('--bad', default='HEAD', metavar='REV',
                     help='a revision where a check fails (default: HEAD)')
    sub.add_argument('--repo', default=None, metavar='DIR',
                     help='the git repository of the model code (default: the current folder)')
    add_options(sub.add_argument, exclude=('launcher',))
    sub.set_defaults(tier='fast')
    sub.add_argument('--json', type=output_file, default=None, metavar='PATH',
                     help='also write the report as JSON to PATH')


def forwarded(args: argparse.Namespace) -> list[str]:
    """The shared options the user gave, as ``epam-guard check`` arguments for each step."""
    argv: list[str] = []
    for option in OPTIONS:
        if option.name in NOT_FORWARDED:
            continue
        value = getattr(args, option.dest(''))
        if value is None or value is False:
            continue
        flag = option.flag('')
        if value is True:
            argv.append(flag)
        elif option.name in ('only', 'skip'):
            argv += [flag, ','.join(value)]
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def _detail(run: Any) -> str:
    if run.status == 'bad':
        return 'fails ' + ', '.join(f'{check} §{section}' for check, section in run.new)
    if run.status == 'skip':
        return f'skipped: {run.reason}'
    return ''


def cmd_bisect(args: argparse.Namespace, console: Any, started: float) -> int:
    """Run the bisection and print (and with ``--json`` write) its report."""
    from ..model.config import resolve_config
    from ..probe.processes import become_subreaper, reap_orphans
    from ..report.console import EXIT_FAILED, EXIT_OK, print_error
    from ..run.supervisor import Interrupted, interruptible, shielded
    from .report import format_report, report
    from .search import bisect, resolve_plan

    config = resolve_config(args) if args.config is None else args.config
    plan = resolve_plan(args.repo, args.good, args.bad, config, args.import_path,
                        forwarded(args))
    console.line(f'epam-guard bisect {plan.config}  good {plan.good[:10]}  bad {plan.bad[:10]}  '
                 f'{plan.commits} commits  in {plan.repo}')
    steps: dict[str, Any] = {'left': None}

    def progress(kind: str, data: Any) -> None:
        if kind == 'tick':
            console.progress()
        elif kind == 'steps':
            steps['left'] = data
        elif kind == 'testing':
            commit, role = data
            left = role or (f'roughly {steps["left"]} steps left' if steps['left'] is not None
                            else 'testing')
            console.progress(f'{commit} ({left})')
        elif kind == 'tested':
            console.line(f'  {data.status.upper():<5} {data.commit.short}  '
                         f'{data.commit.subject[:48]:<48} {data.seconds:6.1f}s  {_detail(data)}'
                         .rstrip())

    become_subreaper()
    try:
        with interruptible():
            outcome = bisect(plan, progress)
    except Interrupted as exc:
        print_error('interrupted; the temporary worktree is removed and the repository is as '
                    'it was')
        return exc.exit_code
    finally:
        with shielded():
            reap_orphans()
    data = report(outcome)
    data['command_seconds'] = round(time.perf_counter() - started, 2)
    for line in format_report(data):
        console.line(line)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2, default=str) + '\n')
    return EXIT_OK if data['first_bad'] else EXIT_FAILED
