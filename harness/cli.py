"""``epam-guard``: the command-line front end (check, trace, summary, bisect).

The CLI is a supervisor: it validates its arguments and prints its first line
before anything heavy is imported, then runs the model in a child process it
can always stop (:mod:`epam_guard.run.supervisor`), and renders what comes back.

Exit status: 0 every check passed, 1 a check failed or errored (or warned,
with ``--strict``), 2 the config, the arguments or the device are unusable
(one-line diagnosis), 128+N when stopped by signal N (130 for Ctrl-C).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bisect.cli import add_parser as add_bisect_parser
from .bisect.cli import cmd_bisect
from .checks import CHECKS, select_checks
from .model.config import resolve_config
from .options import add_options, output_file
from .report.console import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNUSABLE,
    Console,
    header_line,
    print_error,
    report_meta,
    root_cause_summary,
)
from .report.result import bounded

#: Options of the worker's settings that only the CLI reads.
CLI_ONLY = ('command', 'json', 'junit', 'verbose', 'list', 'in_process', 'html', 'dot')


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version('epam-guard')
    except PackageNotFoundError:
        return 'unknown'


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (the full usage is in ``--help``)."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_UNUSABLE, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


class ListChecks(argparse.Action):
    """``--list``: print the check registry and exit, as ``--version`` prints and exits."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(list_checks())
        parser.exit(EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog='epam-guard',
        description='Check an EPAM-Net recognizer config against the interface contract '
                    'before spending GPU-days on it.')
    parser.add_argument('--version', action='version', version=f'epam-guard {_version()}')
    parser.add_argument('--list', action=ListChecks,
                        help='list the checks with their tier and rules, and exit')
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND',
                                     parser_class=Parser)
    check = commands.add_parser('check', help='run the contract checks (default: all)')
    trace = commands.add_parser('trace', help='print the data flow of one loss and one '
                                              'predict call')
    summary = commands.add_parser('summary', help='print parameter counts per part')
    add_bisect_parser(commands)
    for sub in (check, trace, summary):
        sub.add_argument('config', nargs='?', default=None,
                         help='MMEngine config (default: the packaged configs/epam_ntu60.py)')
        add_options(sub.add_argument, exclude=() if sub is check else (
            'only', 'skip', 'tier', 'launcher', 'strict'))
        sub.add_argument('--in-process', action='store_true',
                         help='run the model in this process (for a debugger); a hang or '
                              'crash of the model then takes the guard down with it')
    check.add_argument('--json', type=output_file, default=None, metavar='PATH',
                       help='also write the results as JSON to PATH')
    check.add_argument('--junit', type=output_file, default=None, metavar='PATH',
                       help='also write the results as JUnit XML to PATH (one test case '
                            'per check)')
    for sub, flag, text in (
            (check, '--html', 'also write the results and the recorded data flow as one '
                              'self-contained HTML page to PATH'),
            (trace, '--html', 'draw the data flow as one self-contained HTML page at PATH '
                              'instead of printing it'),
            (trace, '--dot', 'write the data flow as Graphviz dot text to PATH instead of '
                             'printing it')):
        sub.add_argument(flag, type=output_file, default=None, metavar='PATH', help=text)
    check.add_argument('--list', action='store_true',
                       help='list the checks with their rules and tier, and exit')
    check.add_argument('-v', '--verbose', action='store_true',
                       help="print every finding in full and each check's evidence (the "
                            'details its verdict rests on), passing or not')
    return parser


def list_checks() -> str:
    """The registry as a table: name, tier, rules, the contract profiles it runs in, what it
    proves; then each profile's rules."""
    from .contract.profiles import PROFILES

    rules = {name: ', '.join('§' + rule.value for rule in spec.rules)
             for name, spec in CHECKS.items()}
    profiles = {name: ','.join(spec.profiles) for name, spec in CHECKS.items()}
    width, tier, cited, kept = (max(len(text) for text in column) for column in (
        CHECKS, (spec.tier for spec in CHECKS.values()), rules.values(), profiles.values()))
    lines = [f'{spec.name:<{width}}  {spec.tier:<{tier}}  {rules[spec.name]:<{cited}}  '
             f'{profiles[spec.name]:<{kept}}  {spec.summary}' for spec in CHECKS.values()]
    lines.append('')
    lines += [f'contract {profile.name}: {", ".join("§" + rule.value for rule in profile.rules)}'
              f' ({profile.summary})' for profile in PROFILES.values()]
    return '\n'.join(lines)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {key: value for key, value in vars(args).items() if key not in CLI_ONLY}


def _run(spec: dict[str, Any], args: argparse.Namespace, on_event: Any) -> Any:
    """Run the spec supervised in a child process (or, with ``--in-process``, here)."""
    from .probe.processes import become_subreaper, reap_orphans
    from .run.supervisor import Interrupted, Outcome, Supervisor, interruptible, shielded

    if args.in_process:
        from .run.worker import session

        outcome = Outcome()

        def record(event: dict[str, Any]) -> None:
            outcome.record(event)
            on_event(event)

        session(spec, record)
        return outcome
    become_subreaper()
    supervisor = Supervisor(spec, args.timeout, on_event, spec['settings'].get('import_path'))
    try:
        with interruptible():
            supervisor.run()
    except Interrupted as exc:
        supervisor.outcome.interrupted = exc
    finally:
        with shielded():
            supervisor.close()
            reap_orphans()
    return supervisor.outcome


def cmd_check(args: argparse.Namespace, console: Console, started: float) -> int:
    if args.list:
        console.line(list_checks())
        return EXIT_OK
    from .report.paths import refuse_unsafe

    names = select_checks(args.only, args.skip, args.tier)
    config = resolve_config(args)
    settings = {**_settings(args), 'config': config}
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    # Only the rank that writes the reports proves it can (ranks may share the folder).
    refuse_unsafe({'json': args.json, 'junit': args.junit}, Path(config),
                  {'--hierarchy': args.hierarchy}, probe=args.launcher == 'none' or rank == '0')
    if args.launcher == 'none' or rank == '0':  # one header for a whole job
        selection = (f'checks={",".join(names)}' if args.only or args.skip
                     else f'tier={args.tier}')
        console.line(f'epam-guard check {config}  {selection} size={args.size} '
                     f'device={args.device} launcher={args.launcher}')
    if args.launcher != 'none':
        from .run.launcher import run as run_launched
        from .run.worker import settings_from

        return int(run_launched(settings_from(settings), names, args.json, args.junit))

    restarted = False
    flows: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        nonlocal restarted
        kind = event['event']
        if kind == 'flow':
            flows.append(event)
        if kind == 'ready' and restarted:
            return  # a fresh process after a crash or hang: the header was said once
        if kind == 'ready':
            restarted = True
            console.line(header_line(event['header']))
            if event['header'].get('size_note'):
                console.line(f'  note: {event["header"]["size_note"]}')
        elif kind == 'start':
            console.progress(event['check'])
        elif kind == 'tick':
            console.progress()
        elif kind == 'result':
            console.result(event['result'])

    console.progress('start-up')
    outcome = _run({'command': 'check', 'settings': settings, 'checks': names,
                    'picture': bool(args.html)}, args, on_event)
    code = _conclude(args, console, outcome, names, started)
    if args.html:
        from .report.picture import write_check_html

        write_check_html(args.html, outcome.results,
                         {'config': (outcome.header or {}).get('config', config),
                          'exit_status': code}, flows[-1] if flows else None)
    return code


def _conclude(args: argparse.Namespace, console: Console, outcome: Any, names: list[str],
              started: float) -> int:
    results = outcome.results
    failed = [r['name'] for r in results if r['status'] in ('fail', 'error')]
    warned = [r['name'] for r in results if r.get('warnings')]
    header = outcome.header or {}
    cause = (None if outcome.fatal is not None
             else root_cause_summary(results, header.get('recipe'), header.get('contract')))
    timings = dict((outcome.header or {}).get('timings') or {})
    timings['checks'] = sum(r.get('seconds', 0.0) for r in results)
    timings['total'] = time.perf_counter() - started
    stopped = None
    if outcome.fatal is not None:
        code = int(outcome.fatal.get('exit', EXIT_UNUSABLE))
        print_error(outcome.fatal['message'])
        stopped = f'the guard stopped ({bounded(outcome.fatal["message"])})'
    elif outcome.interrupted is not None:
        code = outcome.interrupted.exit_code
        during = outcome.running or ('start-up' if outcome.header is None else 'the report')
        print_error(f'interrupted during {during} ({outcome.interrupted})')
        stopped = f'the run was interrupted ({outcome.interrupted})'
    else:
        console.line('  ' + '  '.join(f'{k} {v:.2f}s' for k, v in timings.items()))
        if cause is not None:
            console.line(f'ROOT CAUSE: {bounded(cause["message"])}')
            if cause.get('fix'):
                console.line(f'  fix: {bounded(cause["fix"])}')
            if cause.get('follows'):
                console.line(f'  {", ".join(cause["follows"])} fail because of it; fix it first')
        strict = args.strict and warned
        # A check the contract profile (or the config) leaves out is said, never counted a pass.
        skipped = [r['name'] for r in results if r['status'] == 'skip']
        console.line(f'{len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed'
                     + (f' ({", ".join(failed)})' if failed else '')
                     + (f', {len(skipped)} not run ({", ".join(skipped)})' if skipped else '')
                     + (f'; warnings in {", ".join(warned)}' if warned else '')
                     + (' (--strict: warnings fail)' if strict else ''))
        code = EXIT_FAILED if failed or strict else EXIT_OK
    meta = report_meta(outcome.header, names, code, cause, outcome.fatal,
                       str(outcome.interrupted) if outcome.interrupted else None, timings)
    from .report.formats import unfinished

    # JUnit has no run-level status: a check that never finished is an error case there.
    missing = unfinished(names, results, outcome.running, stopped) if stopped else []
    _write_reports(args, results, meta, missing)
    return code


def _write_reports(args: argparse.Namespace, results: list[dict[str, Any]],
                   meta: dict[str, Any], missing: list[dict[str, Any]]) -> None:
    from .report.formats import write_json, write_junit

    if args.json:
        write_json(args.json, results, meta)
    if args.junit:
        write_junit(args.junit, results + missing, root_cause=meta['root_cause'],
                    contract=meta.get('contract'))


def cmd_text(args: argparse.Namespace, console: Console, started: float) -> int:
    """``trace`` and ``summary``: one text from the model process."""
    config = resolve_config(args)
    settings = {**_settings(args), 'config': config}
    picture = bool(getattr(args, 'html', None) or getattr(args, 'dot', None))
    flows: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        if event['event'] == 'tick':
            console.progress()
        elif event['event'] == 'flow':
            flows.append(event)

    console.progress('start-up')
    outcome = _run({'command': args.command, 'settings': settings, 'checks': [],
                    'picture': picture}, args, on_event)
    if outcome.fatal is not None:
        print_error(outcome.fatal['message'])
        return int(outcome.fatal.get('exit', EXIT_UNUSABLE))
    if outcome.interrupted is not None:
        print_error(f'interrupted during {args.command} ({outcome.interrupted})')
        return outcome.interrupted.exit_code
    if picture:
        from .report.picture import write_trace

        if not flows or flows[-1].get('flow') is None:
            print_error('no data flow to draw: ' + (flows[-1].get('reason', '') if flows else
                                               'the model process sent none'))
            return EXIT_FAILED
        for path in write_trace(flows[-1]['flow'], args.html, args.dot):
            console.line(f'wrote {path}')
        return EXIT_OK
    for text in outcome.text:
        console.line(text)
    return EXIT_OK


COMMANDS = {'check': cmd_check, 'trace': cmd_text, 'summary': cmd_text, 'bisect': cmd_bisect}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``epam-guard``; returns the exit status."""
    started = time.perf_counter()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else EXIT_UNUSABLE
    if getattr(args, 'launcher', 'none') != 'none' and (
            'RANK' in os.environ or 'SLURM_PROCID' in os.environ):
        from .probe.lifeline import die_with_parent

        # A rank of the user's job: tied to the launcher that started it before anything
        # heavy runs, so that the launcher killed outright takes this rank with it.
        die_with_parent()
    from .contract.errors import GuardError

    console = Console(getattr(args, 'verbose', False))
    try:
        return COMMANDS[args.command](args, console, started)
    except GuardError as exc:
        print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print_error('interrupted')
        return 130


if __name__ == '__main__':
    sys.exit(main())
