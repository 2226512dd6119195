"""What the front ends print: the run line by line, the header, the one-line error, and
the meta data every JSON report carries; the exit statuses they share.

Exit status: 0 every check passed, 1 a check failed or errored (or warned, with
``--strict``), 2 the config, the arguments or the device are unusable (one-line
diagnosis), 128+N when stopped by signal N (130 for Ctrl-C).
"""
from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from .formats import terminal_text
from .result import MESSAGE_LIMIT, bounded

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
#: Findings a failed check shows beside its verdict (all of them with --verbose).
SHOWN_FINDINGS = 5


class Console:
    """Prints the run as it happens; on a terminal, the running check with its elapsed time.

    A closed pipe (``epam-guard trace | head``) ends the printing quietly, not the run.
    """

    def __init__(self, verbose: bool = False, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.tty = bool(getattr(self.stream, 'isatty', lambda: False)())
        self.closed = False
        self.running: tuple[str, float] | None = None
        self.shown_progress = False

    def line(self, text: str = '') -> None:
        if self.closed:
            return
        self._clear_progress()
        try:
            # Model messages reach the terminal: shown, never obeyed (a \r, a colour, a bell).
            self.stream.write(terminal_text(text) + '\n')
            self.stream.flush()
        except BrokenPipeError:
            self.closed = True
            # Further writes (and the interpreter's final flush) go nowhere.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())

    def progress(self, label: str | None = None) -> None:
        """Show (or refresh) ``label`` with the seconds since it started; TTY only."""
        if not self.tty or self.closed:
            return
        if label is not None:
            self.running = (label, time.monotonic())
        if self.running is None:
            return
        name, since = self.running
        text = f'  ....  {name:<12} {time.monotonic() - since:5.1f}s'
        with contextlib.suppress(OSError):
            self.stream.write('\r\x1b[2K' + text)
            self.stream.flush()
            self.shown_progress = True

    def _clear_progress(self) -> None:
        if self.shown_progress:
            with contextlib.suppress(OSError):
                self.stream.write('\r\x1b[2K')
            self.shown_progress = False

    def result(self, result: dict[str, Any]) -> None:
        self.running = None
        status = result['status'].upper()
        limit = 10**6 if self.verbose else MESSAGE_LIMIT
        self.line(f'  {status:<5} {result["name"]:<12} {result.get("seconds", 0.0):6.2f}s  '
                  f'{bounded(result["verdict"], limit)}')
        findings = result.get('findings', [])
        shown = findings if self.verbose else findings[:SHOWN_FINDINGS]
        for finding in shown[1:]:
            text = f"[{finding['rule']}] {finding['message']}"
            self.line(f'{"":27}- {bounded(text, limit)}')
        hidden = len(findings) - len(shown)
        if hidden > 0:
            self.line(f'{"":27}... {hidden} more (use --verbose or --json)')
        for warning in result.get('warnings', []):
            self.line(f'{"":27}warning: {bounded(warning, limit)}')
        details = result.get('details') or {}
        if self.verbose and result['status'] == 'error':
            for key in ('stack', 'traceback', 'log_tail'):
                for text in details.get(key) or []:
                    self.line(f'{"":27}{str(text).rstrip()}')
        if self.verbose:  # what the verdict rests on, passing or not
            from .evidence import evidence_lines

            for text in evidence_lines(details):
                self.line(f'{"":27}{text}')


def header_line(header: dict[str, Any]) -> str:
    """Batch, views, what each kind of pass runs at, device, hierarchy; then, one line each,
    what the guard had to assume because the config does not say."""
    recipe = header['recipe']
    passes = header.get('passes') or {}
    sizes = '; '.join(f'{size}' if kind == 'every pass' else f'{kind}: {size}'
                      for kind, size in passes.items())
    line = f'  N={recipe["batch_size"]} V={recipe["views"]}  {sizes}  device {header["device"]}'
    if header.get('hierarchy'):
        line += f'  hierarchy: {header["hierarchy"]}'
    lines = [line]
    if header.get('contract'):
        lines.append(f'  contract: {header["contract"]} ({header.get("contract_reason")})')
    return '\n'.join([*lines, *(f'  assumed: {note}' for note in recipe.get('assumed') or ())])


def report_meta(header: dict[str, Any] | None, names: list[str], code: int,
                cause: dict[str, Any] | None, fatal: dict[str, Any] | None,
                interrupted: str | None, timings: dict[str, float]) -> dict[str, Any]:
    """What the JSON report holds beside the results: the same keys in every mode
    (supervised, ``--in-process``, ``--launcher``)."""
    return {
        'command': shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        'config': (header or {}).get('config'), 'exit_status': code,
        'checks': names, 'root_cause': cause, 'fatal': fatal, 'interrupted': interrupted,
        **{key: value for key, value in (header or {}).items() if key != 'config'},
        'timings': timings,
    }


def root_cause_summary(results: list[dict[str, Any]], inputs: dict[str, Any] | None = None,
                contract: str | None = None) -> dict[str, Any] | None:
    """The one mistake several failures follow from, when there is one (``contract``: the
    profile the model was judged by)."""
    try:
        from .rootcause import root_cause
    except ImportError:
        return None
    from dataclasses import asdict, is_dataclass

    from .result import CheckResult

    found = root_cause([CheckResult.from_json(r) for r in results], inputs, contract)
    if found is None:
        return None
    data = asdict(found) if is_dataclass(found) else dict(found)
    data.setdefault('message', str(found))
    return data


def print_error(message: str) -> None:
    with contextlib.suppress(OSError):
        print(f'epam-guard: error: {terminal_text(bounded(message, 2000))}', file=sys.stderr,
              flush=True)
