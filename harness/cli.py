"""``epam-guard``: the command-line front end (check, trace, summary).

Exit status: 0 every check passed, 1 a check failed or errored, 2 the
config, the arguments or the device are unusable (one-line diagnosis).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .options import add_options
from .result import Status

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
SHOWN_FINDINGS = 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='epam-guard',
        description='Check an EPAM-Net recognizer config against the interface contract '
                    'before spending GPU-days on it.')
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    check = commands.add_parser('check', help='run the contract checks (default: all)')
    trace = commands.add_parser('trace', help='print the data flow of one loss and one '
                                              'predict call')
    summary = commands.add_parser('summary', help='print parameter counts per part')
    for sub in (check, trace, summary):
        sub.add_argument('config', nargs='?', default=None,
                         help='MMEngine config (default: the packaged configs/epam_ntu60.py)')
        add_options(sub.add_argument, exclude=() if sub is check else ('only', 'skip'))
    check.add_argument('--json', type=Path, default=None, metavar='PATH',
                       help='also write the results as JSON to PATH')
    check.add_argument('--junit', type=Path, default=None, metavar='PATH',
                       help='also write the results as JUnit XML to PATH (one test case '
                            'per check)')
    check.add_argument('-v', '--verbose', action='store_true',
                       help='print every finding and the details of failures')
    return parser


def _import_stack() -> float:
    """Import the heavy stack once, timed, so build and check times are honest."""
    start = time.perf_counter()
    import torch  # noqa: F401

    from .context import make_mmaction_importable

    make_mmaction_importable()
    from . import checks  # noqa: F401  (the check modules, timed with the rest)

    return time.perf_counter() - start


def _context(args: argparse.Namespace) -> Any:
    from .context import GuardSettings, build_context

    return build_context(GuardSettings.from_namespace(args))


def _render(result: Any, verbose: bool) -> list[str]:
    status = result.status.value.upper()
    lines = [f'  {status:<5} {result.name:<12} {result.seconds:6.2f}s  {result.verdict}']
    shown = result.findings if verbose else result.findings[:SHOWN_FINDINGS]
    lines += [f'{"":27}- {finding}' for finding in shown[1:]]
    hidden = len(result.findings) - len(shown)
    if hidden > 0:
        lines.append(f'{"":27}... {hidden} more (use --verbose or --json)')
    if verbose and result.status is Status.ERROR:
        lines += [f'{"":27}{line.rstrip()}' for line in result.details.get('traceback', [])]
    return lines


def cmd_check(args: argparse.Namespace, imports: float) -> int:
    from .engine import run_checks, select_checks
    from .report import write_json, write_junit

    names = select_checks(args.only, args.skip)
    ctx = _context(args)
    recipe = ctx.recipe
    print(f'epam-guard check {ctx.settings.config}  size={recipe.size} device={ctx.device} '
          f'N={recipe.batch_size} V={recipe.views}')
    start = time.perf_counter()
    results = run_checks(ctx, names, on_result=lambda result: print(
        '\n'.join(_render(result, args.verbose)), flush=True))
    checks = time.perf_counter() - start
    timings = {'imports': imports, **ctx.timings, 'checks': checks}
    timings['total'] = sum(timings.values())
    print('  ' + '  '.join(f'{k} {v:.2f}s' for k, v in timings.items()))
    failed = [r.name for r in results if not r.ok]
    print(f'{len(results) - len(failed)} passed, {len(failed)} failed'
          + (f' ({", ".join(failed)})' if failed else ''))
    if args.json:
        write_json(args.json, results, {'config': str(ctx.settings.config),
                                        'device': str(ctx.device), 'size': recipe.size,
                                        'recipe': asdict(recipe), 'timings': timings})
    if args.junit:
        write_junit(args.junit, results)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_trace(args: argparse.Namespace, imports: float) -> int:
    from .trace import trace

    print(trace(_context(args)))
    return EXIT_OK


def cmd_summary(args: argparse.Namespace, imports: float) -> int:
    from .checks.summary import parameter_table

    table = parameter_table(_context(args))
    width = max(len(name) for name in table['parts'])
    for name, counts in table['parts'].items():
        print(f'  {name:<{width}}  {counts["params"]:>12,}  trainable {counts["trainable"]:>12,}')
    print(f'  {"total":<{width}}  {table["total"]:>12,}  trainable {table["trainable"]:>12,}'
          f'  mult-adds {table["mult_adds"]:,}')
    return EXIT_OK


COMMANDS = {'check': cmd_check, 'trace': cmd_trace, 'summary': cmd_summary}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``epam-guard``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .errors import GuardError

    try:
        imports = _import_stack()
        return COMMANDS[args.command](args, imports)
    except GuardError as exc:
        print(f'epam-guard: error: {exc}', file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        print('epam-guard: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
