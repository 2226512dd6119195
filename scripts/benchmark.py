"""Measure the guard against its budgets and against its floor: the model's own work.

Usage::

    python scripts/benchmark.py                          # every scenario, 3 runs each, suite
    python scripts/benchmark.py --scenarios fast-tiny,all-tiny --repeat 5 --no-suite
    python scripts/benchmark.py --json bench.json

A scenario is a tier at a size (``fast-tiny``, ``all-tiny``, ``fast-ntu``,
``all-ntu``). Every figure is the median of fresh subprocesses, so interpreter
start-up and imports count as they do for a user:

- the guard: ``epam-guard check --tier T --size S --json``, its own timings
  (imports, config, build, each check), its wall time seen from outside and
  the time until its first line;
- the floor: the same checks in a subprocess of this script, with a clock
  that counts only the model's own work (every ``nn.Module`` call from the
  outermost one in, backward passes, optimizer steps: see
  :class:`ModelClock`); the floor is imports + config + build + that work.
  It is measured on the guard's own calls, so it cannot drift from what the
  checks do. The launch checks run their model calls in other processes and
  a Runner: they are left out of both sides of the ratio;
- ``python -m pytest -m "not gpu"``, the CPU test suite.

Guard and floor runs alternate, so a busy machine slows both alike. Budgets
are printed next to the figures as OK/OVER and never asserted; the exit
status is 1 only when a subprocess fails.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUITE = ('-m', 'pytest', '-m', 'not gpu', '-q', '-p', 'no:cacheprovider')
SCENARIOS = ('fast-tiny', 'all-tiny', 'fast-ntu', 'all-ntu')
#: The budgets (2-core CPU machine): scenario -> seconds of wall time.
WALL_BUDGETS = {'fast-tiny': 7.0, 'all-tiny': 20.0, 'fast-ntu': 60.0, 'all-ntu': 90.0}
FIRST_LINE_S, OVERHEAD_X, SUITE_S = 1.0, 1.1, 90.0


class BenchmarkError(Exception):
    """A subprocess failed; the message is one line."""


Spread = tuple[float, float, float]


# ----------------------------------------------------------------- the floor


class ModelClock:
    """Seconds spent in the model's own work while the guard's checks run.

    Counted: every ``nn.Module`` call from the outermost one in (the
    recognizer, its data preprocessor, torchinfo's pass), every backward pass
    and every optimizer step. Not counted: making batches, recording calls,
    copying state, comparing, formatting: the guard's own work. Nested calls
    count once.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._since = 0.0

    def enter(self, *_: Any) -> None:
        if self._depth == 0:
            self._since = time.perf_counter()
        self._depth += 1

    def leave(self, *_: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._since

    def install(self) -> None:
        """Hook every module call, backward pass and optimizer step of this process."""
        import torch
        from torch.nn.modules import module
        from torch.optim import optimizer

        module.register_module_forward_pre_hook(self.enter)
        module.register_module_forward_hook(self.leave, always_call=True)
        optimizer.register_optimizer_step_pre_hook(self.enter)
        optimizer.register_optimizer_step_post_hook(self.leave)
        backward = torch.autograd.backward

        def timed_backward(*args: Any, **kwargs: Any) -> Any:
            self.enter()
            try:
                return backward(*args, **kwargs)
            finally:
                self.leave()

        torch.autograd.backward = timed_backward


def floor_worker(path: Path, scenario: str) -> None:
    """Run the scenario's fast checks in-process with a :class:`ModelClock`; write the seconds."""
    tier, size = scenario.split('-')
    start = time.perf_counter()
    import torch  # noqa: F401  (timed as the guard's worker times its imports)

    from epam_guard.checks import CHECKS, names_in
    from epam_guard.model.context import build_context
    from epam_guard.run.engine import run_check
    from epam_guard.run.worker import settings_from

    imports = time.perf_counter() - start
    ctx = build_context(settings_from({'size': size, 'device': 'cpu', 'batch_size': 4,
                                       'seed': 0, 'timeout': 300.0, 'label_api': 'gt_label'}))
    clock = ModelClock()
    clock.install()
    checks: dict[str, dict[str, float]] = {}
    for name in names_in('fast'):
        clock.seconds = 0.0
        result = run_check(ctx, name, CHECKS[name])
        checks[name] = {'guard': result.seconds, 'model': clock.seconds}
    path.write_text(json.dumps({'timings': {'imports': imports, **ctx.timings},
                                'checks': checks}))


# ------------------------------------------------------------ the subprocesses


def run(command: list[str], timeout: float) -> tuple[float, str]:
    """Run ``command`` from the repository root; its wall time and stdout.

    Raises:
        BenchmarkError: on a non-zero exit or a timeout, with the last output line.
    """
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f'{shlex.join(command)} took over {timeout:g} s') from exc
    wall = time.perf_counter() - start
    if done.returncode:
        raise BenchmarkError(f'{shlex.join(command)} exited {done.returncode}: '
                             f'{last_line(done.stderr, done.stdout)}')
    return wall, done.stdout


def last_line(stderr: str, stdout: str) -> str:
    """The line that says why: stderr's last when it names an error, else stdout's last."""
    err = [line.strip() for line in stderr.splitlines() if line.strip()]
    out = [line.strip() for line in stdout.splitlines() if line.strip()]
    if err and 'rror' in err[-1]:
        return err[-1]
    return (out or err or ['no output'])[-1]


def guard_command() -> list[str]:
    """``epam-guard`` of this interpreter's environment (or ``-m epam_guard``)."""
    script = Path(sys.executable).with_name('epam-guard')
    return [str(script)] if script.exists() else [sys.executable, '-m', 'epam_guard']


def guard_run(scenario: str, timeout: float) -> dict[str, Any]:
    """One fresh ``epam-guard check``: its timings, per-check seconds, wall and first line."""
    tier, size = scenario.split('-')
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / 'guard.json'
        command = guard_command() + ['check', '--tier', tier, '--size', size, '--json', str(out)]
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()
        first_line = time.perf_counter() - start
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            raise BenchmarkError(f'{shlex.join(command)} took over {timeout:g} s') from exc
        wall = time.perf_counter() - start
        if proc.returncode:
            raise BenchmarkError(f'{shlex.join(command)} exited {proc.returncode}: '
                                 f'{last_line(stderr, stdout)}')
        payload = json.loads(out.read_text())
    return {'timings': payload['timings'], 'wall': wall, 'first_line': first_line,
            'checks': {r['name']: r['seconds'] for r in payload['results']}}


def floor_run(scenario: str, timeout: float) -> dict[str, Any]:
    """One fresh floor subprocess (this script in worker mode)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / 'floor.json'
        wall, _ = run([sys.executable, str(Path(__file__).resolve()), '--floor-worker',
                       str(out), '--scenarios', scenario], timeout)
        payload = json.loads(out.read_text())
    payload['wall'] = wall
    return payload


def suite_run(extra: str, timeout: float) -> tuple[float, str]:
    """One run of the CPU test suite: its wall time and pytest's summary line."""
    wall, out = run([sys.executable, *SUITE, *shlex.split(extra)], timeout)
    lines = [line.strip('= ') for line in out.splitlines() if line.strip()]
    summary = [line for line in lines if re.search(r'\d+ (passed|failed|error)', line)]
    return wall, (summary or lines or ['no output'])[-1]


# --------------------------------------------------------------- the numbers


def spread(values: Sequence[float]) -> Spread:
    """(median, min, max) of ``values``."""
    return statistics.median(values), min(values), max(values)


def measure_scenario(scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    """Alternate guard and floor runs; per part the median [min, max] of both."""
    guards, floors = [], []
    for index in range(args.repeat):
        guards.append(guard_run(scenario, args.timeout))
        floors.append(floor_run(scenario, args.timeout))
        print(f'  {scenario} run {index + 1}/{args.repeat}: guard {guards[-1]["wall"]:.1f} s, '
              f'floor run {floors[-1]["wall"]:.1f} s', file=sys.stderr, flush=True)
    fast = [name for name in guards[0]['checks'] if name in floors[0]['checks']]
    rows: dict[str, dict[str, Spread | None]] = {}
    for phase in ('imports', 'config', 'build'):
        rows[phase] = {'guard': spread([g['timings'].get(phase, 0.0) for g in guards]),
                       'floor': spread([f['timings'].get(phase, 0.0) for f in floors])}
    for name in guards[0]['checks']:
        model = ([f['checks'][name]['model'] for f in floors] if name in fast else None)
        rows[name] = {'guard': spread([g['checks'][name] for g in guards]),
                      'floor': spread(model) if model else None}

    def covered(run_: dict[str, Any], floor: bool) -> float:
        phases = sum(run_['timings'].get(p, 0.0) for p in ('imports', 'config', 'build'))
        if floor:
            return phases + sum(run_['checks'][n]['model'] for n in fast)
        return phases + sum(run_['checks'][n] for n in fast)

    rows['covered total'] = {'guard': spread([covered(g, False) for g in guards]),
                             'floor': spread([covered(f, True) for f in floors])}
    rows['wall (outside)'] = {'guard': spread([g['wall'] for g in guards]), 'floor': None}
    rows['first line'] = {'guard': spread([g['first_line'] for g in guards]), 'floor': None}
    guard_total, floor_total = rows['covered total']['guard'], rows['covered total']['floor']
    assert guard_total is not None and floor_total is not None
    ratio = guard_total[0] / floor_total[0]
    return {'rows': rows, 'fast': fast, 'ratio': ratio, 'guard_runs': guards,
            'floor_runs': floors}


def measure_suite(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU test suite, ``--suite-repeat`` times."""
    runs = []
    for index in range(args.suite_repeat):
        runs.append(suite_run(args.suite_args, args.timeout))
        print(f'  suite run {index + 1}/{args.suite_repeat}: {runs[-1][0]:.1f} s',
              file=sys.stderr, flush=True)
    return {'args': args.suite_args, 'walls': [wall for wall, _ in runs], 'summary': runs[-1][1],
            'wall': spread([wall for wall, _ in runs])}


def budgets(scenarios: dict[str, dict], suite: dict | None) -> list[dict]:
    """Each budget that was measured: figure, limit, OK/OVER."""
    rows = []
    for name, result in scenarios.items():
        rows.append((f'{name}: wall incl. imports', result['rows']['wall (outside)']['guard'][0],
                     WALL_BUDGETS[name], 's'))
        rows.append((f'{name}: first line', result['rows']['first line']['guard'][0],
                     FIRST_LINE_S, 's'))
        rows.append((f'{name}: guard / floor (fast checks)', result['ratio'], OVERHEAD_X, 'x'))
    if suite:
        rows.append(('CPU test suite, wall', suite['wall'][0], SUITE_S, 's'))
    return [{'budget': name, 'figure': value, 'limit': limit, 'unit': unit,
             'verdict': 'OK' if value <= limit else 'OVER'}
            for name, value, limit, unit in rows]


# ------------------------------------------------------------------ printing


def machine() -> dict[str, Any]:
    """Cores, torch version and threads, Python, load average."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return {'nproc': cores, 'torch': torch.__version__, 'threads': torch.get_num_threads(),
            'interop_threads': torch.get_num_interop_threads(),
            'python': sys.version.split()[0], 'load': list(os.getloadavg())}


def cell(value: Spread | None) -> str:
    """``median [min-max]`` in seconds, or ``-``."""
    if value is None:
        return '-'
    return f'{value[0]:7.2f} [{value[1]:.2f}-{value[2]:.2f}]'


def scenario_table(name: str, result: dict[str, Any], repeat: int) -> list[str]:
    """Guard and floor side by side, one row per part."""
    lines = [f'{name}: epam-guard check --tier {name.split("-")[0]} --size '
             f'{name.split("-")[1]}, median [min-max] of {repeat}, seconds',
             f'  {"part":<16}{"guard":>23}  {"floor (model work)":>23}  {"guard/floor":>11}']
    for part, row in result['rows'].items():
        guard, floor = row['guard'], row['floor']
        ratio = f'{guard[0] / floor[0]:10.2f}x' if guard and floor and floor[0] > 0 else ''
        lines.append(f'  {part:<16}{cell(guard):>23}  {cell(floor):>23}  {ratio:>11}')
    return lines


def report(info: dict, scenarios: dict, suite: dict | None, rows: list[dict],
           args: argparse.Namespace) -> str:
    """Every table as plain text."""
    lines = [f'machine: nproc {info["nproc"]}, torch {info["torch"]} (threads '
             f'{info["threads"]}, inter-op {info["interop_threads"]}), python '
             f'{info["python"]}, load average {" ".join(f"{x:.2f}" for x in info["load"])}'
             + ('' if info['nproc'] == 2 else '  (the budgets are for 2 cores)'), '']
    for name, result in scenarios.items():
        lines += scenario_table(name, result, args.repeat) + ['']
    if suite:
        lines += [f'CPU test suite (python {shlex.join(SUITE)} {args.suite_args}'.rstrip()
                  + f'), {len(suite["walls"])} run(s): {cell(suite["wall"]).strip()} s',
                  f'  pytest: {suite["summary"]}', '']
    lines.append('budgets')
    width = max([len(row['budget']) for row in rows], default=0)
    lines += [f'  {row["budget"]:<{width}}{row["figure"]:9.2f} {row["unit"]}  <= '
              f'{row["limit"]:<4g} {row["unit"]}  {row["verdict"]}' for row in rows]
    return '\n'.join(lines)


# ---------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenarios', default=','.join(SCENARIOS),
                        help=f'comma-separated, of {", ".join(SCENARIOS)}')
    parser.add_argument('--repeat', type=int, default=3, help='runs per scenario (median)')
    parser.add_argument('--suite', action=argparse.BooleanOptionalAction, default=True,
                        help='also time the CPU test suite (default on)')
    parser.add_argument('--suite-repeat', type=int, default=None,
                        help='suite runs (default: --repeat)')
    parser.add_argument('--suite-args', default='',
                        help="extra pytest arguments as one string: --suite-args='-k cli'")
    parser.add_argument('--timeout', type=float, default=3600.0,
                        help='seconds any one subprocess may take')
    parser.add_argument('--json', type=Path, default=None, metavar='PATH',
                        help='also write the raw numbers as JSON')
    parser.add_argument('--floor-worker', type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(',') if s.strip()]
    args.suite_repeat = args.suite_repeat or args.repeat
    if min(args.repeat, args.suite_repeat) < 1 or not set(args.scenarios) <= set(SCENARIOS):
        parser.error(f'--repeat/--suite-repeat must be >= 1 and --scenarios of {SCENARIOS}')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables; 1 when a subprocess fails."""
    args = parse_args(argv)
    if args.floor_worker:
        floor_worker(args.floor_worker, args.scenarios[0])
        return 0
    info = machine()
    try:
        scenarios = {name: measure_scenario(name, args) for name in args.scenarios}
        suite = measure_suite(args) if args.suite else None
    except BenchmarkError as exc:
        print(f'benchmark: error: {exc}', file=sys.stderr)
        return 1
    rows = budgets(scenarios, suite)
    print(report(info, scenarios, suite, rows, args))
    if args.json:
        args.json.write_text(json.dumps({'machine': info, 'settings': vars(args) | {
            'json': str(args.json), 'floor_worker': None}, 'scenarios': scenarios,
            'suite': suite, 'budgets': rows}, indent=2, default=str) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
