"""Run model code in a child process the guard can always stop.

The guard runs other people's unfinished model code. A check that hangs,
a segfault, ``os._exit`` or a signal must end in a report, never in silence or
orphans. So the CLI does not run checks itself: it starts
``python -m epam_guard.run.worker`` in a new session, reads its JSON events from a
pipe and watches the clock.

- A check that runs past ``timeout`` gets its stack dumped (``faulthandler``
  on ``SIGUSR1``), then the child and everything it started are stopped;
  the check is reported as hung, with where it was, and a fresh child runs
  the remaining checks.
- A child that ends without saying ``done`` (segfault, ``os._exit``, killed)
  is reported against the check it was running, with its exit status or
  signal and the stack ``faulthandler`` wrote; the remaining checks go on in
  a fresh child.
- Every process of the run is stopped and reaped on every way out (frozen
  with ``SIGSTOP`` first, so nothing spawns while the tree is walked), and
  the run's temporary folder (spec, stack dumps, the child's ``TMPDIR``) is
  removed.
"""
from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract.errors import StopRequested
from ..probe.frames import read_stack, where
from ..probe.processes import describe_exit, stop_tree

Event = dict[str, Any]
#: Seconds the child gets to write its stack after the dump signal.
DUMP_GRACE = 0.5
#: Seconds a child may take to import and build before any model code runs
#: (``--timeout`` bounds model code; a loaded machine must not look like a hang).
STARTUP_S = 120.0
#: Bytes of events already sent that an interrupted run still takes in (a pipe holds 64 KiB).
DRAIN_BYTES = 1 << 20
#: Lines of the child's own output kept for a report.
LOG_TAIL = 15
#: Frames of a dumped stack kept in a report.
STACK_FRAMES = 8
#: How a report names each step before the first check (the worker's ``phase`` events).
PHASES = {'start-up': 'while starting (imports)',
          'build': 'while loading the config and building the model',
          'size probe': 'in the size probe (a loss pass before the first check)',
          'batch size check': 'while checking that the batch fits in memory'}
#: Signals that stop a run: Ctrl-C, ``kill``, and a closed terminal (SIGHUP, as SIGTERM).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ('SIGINT', 'SIGTERM', 'SIGHUP')
                     if hasattr(signal, name))


class Interrupted(StopRequested):
    """SIGINT, SIGTERM or SIGHUP reached the guard; the run is being stopped."""


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn :data:`STOP_SIGNALS` into :class:`Interrupted` while the body runs (main thread)."""
    def raise_interrupted(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, raise_interrupted) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ignore :data:`STOP_SIGNALS` while the body cleans up (a second Ctrl-C must not cut it)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class Outcome:
    """What a supervised run produced."""

    header: dict[str, Any] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    fatal: dict[str, Any] | None = None
    text: list[str] = field(default_factory=list)
    interrupted: Interrupted | None = None
    running: str | None = None
    restarts: int = 0
    #: The worker's last step before the first check (``build``, ``size probe``, ...).
    phase: str | None = None

    def record(self, event: Event) -> None:
        """Take in one event of the worker (:mod:`epam_guard.run.worker`)."""
        kind = event.get('event')
        if kind == 'start':
            self.running = event['check']
        elif kind == 'result':
            self.results.append(event['result'])
            self.running = None
        elif kind == 'ready':
            self.header = event['header']
        elif kind == 'fatal':
            self.fatal = event
        elif kind == 'text':
            self.text.append(event['text'])
        elif kind == 'phase':
            self.phase = event['name']


class Supervisor:
    """Runs one command (``check``, ``trace``, ``summary``) in supervised child processes.

    Args:
        spec: the worker's spec (command, settings, checks); see :mod:`epam_guard.run.worker`.
        timeout: seconds one check (and the start-up before the first) may take.
        on_event: sees each event as it arrives (the CLI prints from it); events
            the supervisor makes itself (a hung or crashed check) come through it too.
        import_paths: folders put first on the child's ``PYTHONPATH``.
        worker: the module the child runs (``python -m WORKER SPEC EVENT_FD``).
    """

    def __init__(self, spec: dict[str, Any], timeout: float,
                 on_event: Callable[[Event], None] | None = None,
                 import_paths: list[str] | None = None,
                 worker: str = 'epam_guard.run.worker') -> None:
        self.spec, self.timeout, self.worker = spec, timeout, worker
        self.on_event = on_event or (lambda event: None)
        self.import_paths = list(import_paths or [])
        self.folder = Path(tempfile.mkdtemp(prefix='epam-guard-'))
        self.proc: subprocess.Popen | None = None
        self.outcome = Outcome()
        self._check_started = time.monotonic()

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process of the run and remove its temporary folder."""
        if self.proc is not None:
            stop_tree(self.proc.pid)
            self.proc = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = self.import_paths + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
        if paths:
            env['PYTHONPATH'] = os.pathsep.join(dict.fromkeys(paths))
        tmp = self.folder / 'tmp'
        tmp.mkdir(exist_ok=True)
        env['TMPDIR'] = str(tmp)  # whatever the checks create goes when the run ends
        return env

    def _spawn(self, checks: list[str], attempt: int) -> tuple[subprocess.Popen, int, Path, Path]:
        fault, log = self.folder / f'stack{attempt}.txt', self.folder / f'child{attempt}.log'
        spec_path = self.folder / f'spec{attempt}.json'
        spec_path.write_text(json.dumps({**self.spec, 'checks': checks,
                                         'fault_file': str(fault)}, default=str))
        read_fd, write_fd = os.pipe()
        with open(log, 'wb') as out:
            # The worker's first act is to tie its life to this process's (its pid, last).
            proc = subprocess.Popen(
                [sys.executable, '-m', self.worker, str(spec_path), str(write_fd),
                 str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), env=self._env(), start_new_session=True)
        os.close(write_fd)
        return proc, read_fd, fault, log

    # ------------------------------------------------------------------ running
    def run(self) -> Outcome:
        """Run the spec's command to the end; a hung or crashed check does not stop the rest."""
        remaining = list(self.spec.get('checks') or [])
        attempt = 0
        while True:
            finished = self._run_child(remaining, attempt)
            attempt += 1
            if self._retry_without_probe():
                continue
            if finished or self.outcome.fatal is not None or not remaining:
                return self.outcome
            self.outcome.restarts += 1
            # The next process takes the sizes this one settled on, without probing again.
            header = self.outcome.header or {}
            self.spec.update(fit=False, recipe=header.get('recipe'),
                             size_note=header.get('size_note'))

    def _will_retry(self) -> bool:
        """Whether a process that ended before the first check is started once more: only
        one that died or hung in the size probe (a build that fails fails again)."""
        fatal = self.outcome.fatal
        return fatal is not None and bool(fatal.get('crashed')) \
            and fatal.get('phase') == 'size probe' and self.outcome.header is None \
            and self.spec.get('fit') is not False and self.spec.get('command') == 'check'

    def _retry_without_probe(self) -> bool:
        """A process that died in the size probe (a loss pass before the first check)
        is started once more without it: each check then shows what the model does."""
        fatal = self.outcome.fatal
        if fatal is None or not self._will_retry():
            return False
        self.outcome.fatal = None
        self.outcome.restarts += 1
        self.spec.update(fit=False, size_note=(
            f'the size probe (a loss pass before the first check) stopped the model process: '
            f'{fatal["message"]}; checking at the asked size'))
        return True

    def _emit(self, event: Event) -> None:
        self.on_event(event)

    def _run_child(self, remaining: list[str], attempt: int) -> bool:
        """One child over ``remaining`` (consumed as results arrive); True when it said done."""
        self.proc, read_fd, fault, log = self._spawn(list(remaining), attempt)
        self._check_started = time.monotonic()
        self.outcome.phase = None
        running: str | None = None
        since, model_code = time.monotonic(), False
        buffer = b''
        selector = selectors.DefaultSelector()
        selector.register(read_fd, selectors.EVENT_READ)
        try:
            while True:
                ready = selector.select(timeout=0.2)
                if ready:
                    chunk = os.read(read_fd, 1 << 16)
                    if not chunk:  # the child (and only it) held the write end: it has ended
                        break
                    buffer += chunk
                    while b'\n' in buffer:
                        # One line at a time: what is left in the buffer is exactly what
                        # was not taken yet, should a stop request come from this line.
                        line, buffer = buffer.split(b'\n', 1)
                        event = self._take(line, remaining)
                        kind = event.get('event')
                        if kind in ('start', 'result', 'ready', 'phase', 'progress'):
                            since = time.monotonic()  # the clock restarts at each step
                            model_code = model_code or kind in ('ready', 'phase')
                        if kind == 'start':
                            running, self._check_started = event['check'], since
                        elif kind == 'phase':
                            self._check_started = since
                        elif kind == 'result':
                            running = None
                        if kind in ('done', 'fatal'):
                            return True
                elif self.proc.poll() is not None:
                    break
                else:
                    self._emit({'event': 'tick'})
                limit = self.timeout if model_code else max(self.timeout, STARTUP_S)
                if time.monotonic() - since > limit:
                    self._hung(running, remaining, fault, log, limit)
                    return False
            self.proc.wait()
            self._crashed(running, remaining, fault, log)
            return False
        except StopRequested:
            # What the worker sent before the signal still counts: the report then names
            # the check it was in, not the one before (its start may be unread in the pipe).
            self._drain(selector, read_fd, buffer, remaining)
            raise
        finally:
            selector.close()
            os.close(read_fd)
            if self.proc is not None:
                stop_tree(self.proc.pid)
                self.proc = None

    def _take(self, line: bytes, remaining: list[str]) -> Event:
        """One event line of the worker: recorded, its check's result consumed, passed on."""
        event: Event = json.loads(line)
        self.outcome.record(event)
        if event.get('event') == 'result':
            remaining.remove(event['result']['name'])
        self._emit(event)
        return event

    def _drain(self, selector: selectors.BaseSelector, read_fd: int, buffer: bytes,
               remaining: list[str]) -> None:
        """Take in the whole event lines already read (``buffer``) or in the pipe, without
        waiting for more (at most :data:`DRAIN_BYTES`: a worker still writing cannot hold
        this up)."""
        taken = 0
        while True:
            *lines, buffer = buffer.split(b'\n')
            for line in lines:
                self._take(line, remaining)
            if taken >= DRAIN_BYTES or not selector.select(timeout=0):
                return
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                return
            taken += len(chunk)
            buffer += chunk

    # ------------------------------------------------------------------ reports
    def _log_tail(self, log: Path) -> list[str]:
        try:
            return log.read_text(errors='replace').splitlines()[-LOG_TAIL:]
        except OSError:
            return []

    def _report(self, running: str | None, remaining: list[str], verdict: str,
                details: dict[str, Any]) -> None:
        if running is None:
            # Before the first check: nothing was built, so no check can run.
            phase = self.outcome.phase or 'start-up'
            self.outcome.fatal = {'event': 'fatal', 'exit': 1, 'rule': None, 'crashed': True,
                                  'phase': phase, 'message': f'the model process {verdict} '
                                                             f'{PHASES.get(phase, "in " + phase)}',
                                  **details}
            if not self._will_retry():
                # This is the report: the step it was stuck in is its failing row.
                self._add_row(phase, verdict, details)
                self._emit(self.outcome.fatal)
            return
        remaining.remove(running)
        self._add_row(running, verdict, details)

    def _add_row(self, name: str, verdict: str, details: dict[str, Any]) -> None:
        result = {'name': name, 'status': 'error', 'verdict': verdict, 'findings': [],
                  'details': details,
                  'seconds': round(time.monotonic() - self._check_started, 2), 'warnings': []}
        self.outcome.results.append(result)
        self.outcome.running = None
        self._emit({'event': 'result', 'result': result})

    def _hung(self, running: str | None, remaining: list[str], fault: Path, log: Path,
              limit: float) -> None:
        assert self.proc is not None
        from .worker import DUMP_SIGNAL

        if DUMP_SIGNAL is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(DUMP_SIGNAL)
            time.sleep(DUMP_GRACE)
        stop_tree(self.proc.pid)
        stack = read_stack(fault)
        verdict = (f'did not finish within {limit:g} s and was stopped; it was in '
                   f'{where(stack)}')
        self._report(running, remaining, verdict if running else f'hung ({verdict})',
                     {'stack': stack[:STACK_FRAMES], 'log_tail': self._log_tail(log)})

    def _crashed(self, running: str | None, remaining: list[str], fault: Path,
                 log: Path) -> None:
        assert self.proc is not None
        code = self.proc.returncode
        stack = read_stack(fault)
        at = f' in {where(stack)}' if stack else ''
        verdict = f'the model process {describe_exit(code)}{at}'
        if running is None:
            verdict = describe_exit(code) + at
        self._report(running, remaining, verdict,
                     {'exit_status': code, 'stack': stack[:STACK_FRAMES],
                      'log_tail': self._log_tail(log)})
