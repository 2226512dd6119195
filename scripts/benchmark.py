"""Measure the guard against the budgets of DESIGN.md: check time, overhead, test suite.

Usage::

    python scripts/benchmark.py                        # tiny and ntu, 3 runs each, suite
    python scripts/benchmark.py --sizes tiny --repeat 5 --no-suite
    python scripts/benchmark.py --skip pipeline,runner,ddp --json bench.json

Every figure is the median of fresh subprocesses, so interpreter start-up and
imports count as they do for a user:

- ``epam-guard check --json`` at each size: its own timings (imports, config,
  build, each check) and its wall time seen from outside;
- the floor: a subprocess of this script that imports, builds the model the
  same way and makes only the raw model calls the checks make (see
  :class:`Floor`), without hooks, recording, copies or analysis;
- ``python -m pytest -m "not gpu"``, the CPU test suite.

Guard and floor runs alternate, so a busy machine slows both alike. Budgets
are printed next to the figures as OK/OVER and never asserted; the exit
status is 1 only when a subprocess fails.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUITE = ('-m', 'pytest', '-m', 'not gpu', '-q', '-p', 'no:cacheprovider')
PHASES = ('imports', 'config', 'build')
#: DESIGN.md "Budgets" (2-core CPU machine).
TINY_WALL_S, OVERHEAD_X, SUITE_S, DDP_S = 10.0, 1.5, 90.0, 20.0


class BenchmarkError(Exception):
    """A subprocess failed; the message is one line."""


Record = dict[str, float]
Spread = tuple[float, float, float]


# ----------------------------------------------------------------- the floor


class Floor:
    """The raw model calls the contract checks make, and nothing else.

    Each method mirrors one check of ``harness/checks`` with plain
    ``model.data_preprocessor`` and ``model(**data, mode=...)`` calls: no
    hooks, recording, state copies or analysis. A synthetic batch is made once
    per distinct shape and labels (the guard remakes them), and the default
    passes that ``structure`` and ``routing`` share run once, as the guard's
    pass cache does. The calls are those of a config that passes (``labels``
    re-runs reordered batches only then); each method runs in its own thread,
    as the guard's engine runs each check (see :func:`in_thread`).
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx, self.model, self.recipe = ctx, ctx.model, ctx.recipe
        self.batches: dict[Any, dict[str, Any]] = {}
        self.shared: set[Any] = set()

    def batch(self, recipe: Any, views: int = 1, labels: list[int] | None = None) -> dict:
        """The synthetic batch for ``recipe``, ``views`` and ``labels``, made once."""
        from epam_guard.batch import make_batch

        key = (recipe, views, tuple(labels) if labels else None)
        if key not in self.batches:
            self.batches[key] = make_batch(recipe, views=views, labels=labels)
        return self.batches[key]

    def call(self, mode: str, batch: dict[str, Any], grad: bool = False) -> Any:
        """Preprocess ``batch`` and call the recognizer in ``mode`` (train mode for loss)."""
        import torch

        from epam_guard.batch import preprocess

        training = mode == 'loss'
        self.model.train(training)
        data = preprocess(self.model, batch, training)
        with torch.set_grad_enabled(grad):
            return self.model(**data, mode=mode)

    def shared_pass(self, mode: str, recipe: Any = None) -> None:
        """The default no-grad pass of ``mode`` (``run_pass``), once per mode and recipe."""
        recipe = recipe or self.recipe
        if (mode, recipe) not in self.shared:
            self.shared.add((mode, recipe))
            self.call(mode, self.batch(recipe, 1 if mode == 'loss' else recipe.views))

    def structure(self) -> None:
        """Loss pass (N x 1 view) and predict pass (N x V views)."""
        for mode in ('loss', 'predict'):
            self.shared_pass(mode)

    def routing(self) -> None:
        """The structure passes and a tensor pass (N x V views)."""
        for mode in ('loss', 'predict', 'tensor'):
            self.shared_pass(mode)

    def labels(self) -> None:
        """At tiny size with max(N, 8) samples: base, reversed, sub-batch, two bad labels."""
        from epam_guard.batch import select, shrink, synthetic_labels
        from epam_guard.checks.labels import MIN_SAMPLES

        size = max(self.recipe.batch_size, MIN_SAMPLES)
        tiny = replace(shrink(self.recipe), batch_size=size)
        self.shared_pass('loss', tiny)
        for order in (list(reversed(range(size))), list(range(1, size))):
            self.call('loss', select(self.batch(tiny), order))
        labels = synthetic_labels(size, tiny.num_classes)
        for bad in (tiny.num_classes, -1):
            # Rejected before the backbone, as the check expects: time what runs.
            with contextlib.suppress(Exception):
                self.call('loss', self.batch(tiny, labels=[bad] + labels[1:]))

    def train_step(self) -> None:
        """Loss with grad, backward and one step of the config's optimizer, loss again."""
        from mmengine.optim import build_optim_wrapper

        batch = self.batch(self.recipe)
        before = self.train_loss(batch, grad=True)
        wrapper = build_optim_wrapper(self.model, copy.deepcopy(self.ctx.cfg.optim_wrapper))
        wrapper.zero_grad()
        wrapper.backward(before)
        wrapper.step()
        wrapper.zero_grad()
        self.train_loss(batch, grad=False)

    def train_loss(self, batch: dict[str, Any], grad: bool) -> Any:
        """The summed loss of ``batch`` under the check's fixed seed."""
        import torch

        torch.manual_seed(self.ctx.settings.seed)
        total, _ = self.model.parse_losses(self.call('loss', batch, grad))
        return total

    def eval_purity(self) -> None:
        """Predict and tensor at min(V, 2) views without grad, a loss pass with grad."""
        views = min(self.recipe.views, 2)
        self.call('predict', self.batch(self.recipe, views))
        self.call('tensor', self.batch(self.recipe, views))
        self.call('loss', self.batch(self.recipe), grad=True)

    def summary(self) -> None:
        """One eval tensor pass through backbone and head at one view (torchinfo's)."""
        import torch

        from epam_guard.batch import preprocess

        self.model.eval()
        data = preprocess(self.model, self.batch(self.recipe), False)
        with torch.no_grad():
            self.model(data['inputs'], stage='head')


#: Checks the floor covers; any other check the guard runs is left out of both sides.
COVERED = ('structure', 'routing', 'labels', 'train_step', 'eval_purity', 'summary')


def left_out(checks: Sequence[str]) -> list[str]:
    """The checks among ``checks`` that the floor does not cover (the launch checks)."""
    return [name for name in checks if name not in COVERED]


def in_thread(func: Callable[[], None]) -> float:
    """Run ``func`` in a fresh thread, as the guard's engine runs each check; its seconds.

    Not a detail: on a busy 2-core machine, passes made from the main thread
    were measured up to 20x slower than the same passes from a worker thread
    (OpenMP's spin-waiting), which would make the floor meaningless.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            func()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    start = time.perf_counter()
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def floor_worker(path: Path, size: str, batch_size: int, checks: list[str]) -> None:
    """Import, build and run the floor's passes for ``checks``; write the timings to ``path``."""
    start = time.perf_counter()
    import torch

    from epam_guard.context import GuardSettings, build_context, make_mmaction_importable

    make_mmaction_importable()  # the guard's own timed imports: torch, mmaction.models
    imports = time.perf_counter() - start
    import epam_guard.checks  # noqa: F401  (untimed, as in the guard's CLI)

    ctx = build_context(GuardSettings(size=size, batch_size=batch_size))
    floor = Floor(ctx)
    passes = time.perf_counter()
    seconds = {name: in_thread(getattr(floor, name)) for name in checks}
    timings = {'imports': imports, **ctx.timings, 'checks': time.perf_counter() - passes}
    timings['total'] = sum(timings.values())
    recipe = {'N': ctx.recipe.batch_size, 'V': ctx.recipe.views,
              'rgb': list(ctx.recipe.shapes()['imgs'][1:]),
              'pose': list(ctx.recipe.shapes()['heatmap_imgs'][1:])}
    path.write_text(json.dumps({'timings': timings, 'checks': seconds, 'recipe': recipe,
                                'threads': torch.get_num_threads()}))


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
    """``epam-guard`` of this interpreter's environment (or ``-m epam_guard.cli``)."""
    script = Path(sys.executable).with_name('epam-guard')
    return [str(script)] if script.exists() else [sys.executable, '-m', 'epam_guard.cli']


def guard_run(size: str, batch_size: int, skip: str | None, timeout: float) -> dict:
    """One fresh ``epam-guard check --json``: its timings, per-check seconds and wall."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / 'guard.json'
        command = guard_command() + ['check', '--json', str(out), '--size', size,
                                     '--batch-size', str(batch_size)]
        wall, _ = run(command + (['--skip', skip] if skip else []), timeout)
        payload = json.loads(out.read_text())
    return {'timings': {**payload['timings'], 'wall': wall},
            'checks': {r['name']: r['seconds'] for r in payload['results']}}


def floor_run(size: str, batch_size: int, checks: list[str], timeout: float) -> dict:
    """One fresh floor subprocess (this script in worker mode): its timings and wall."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / 'floor.json'
        command = [sys.executable, str(Path(__file__).resolve()), '--floor-worker', str(out),
                   '--sizes', size, '--batch-size', str(batch_size),
                   '--floor-checks', ','.join(checks)]
        wall, _ = run(command, timeout)
        payload = json.loads(out.read_text())
    payload['timings']['wall'] = wall
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


def flatten(run_: dict, guard: bool) -> Record:
    """A guard or floor run as one row per part: phases, each check, totals."""
    timings, checks = run_['timings'], run_['checks']
    row = {key: timings[key] for key in PHASES}
    row.update(checks)
    between = timings['checks'] - sum(checks.values())
    if guard:  # the engine's state snapshot and restore around each check, and printing
        row['between checks'] = between
    row.update({key: timings[key] for key in ('checks', 'total', 'wall')})
    # Checks the floor lacks leave with their seconds and an even share of `between`.
    others = left_out(list(checks))
    uncovered = sum(checks[name] for name in others) + (
        between * len(others) / len(checks) if guard and checks else 0.0)
    row['total, covered'] = timings['total'] - uncovered
    row['wall, covered'] = timings['wall'] - uncovered
    return row


def medians(rows: list[Record]) -> dict[str, Spread]:
    """Median, min and max of every part over the runs."""
    return {key: spread([row[key] for row in rows]) for key in rows[0]}


def measure_size(size: str, args: argparse.Namespace) -> dict[str, Any]:
    """Alternate guard and floor runs at ``size``; the raw runs and their medians."""
    guards: list[dict] = []
    floors: list[dict] = []
    for index in range(args.repeat):
        guards.append(guard_run(size, args.batch_size, args.skip, args.timeout))
        checks = [name for name in guards[0]['checks'] if name in COVERED]
        floors.append(floor_run(size, args.batch_size, checks, args.timeout))
        print(f'  {size} run {index + 1}/{args.repeat}: guard '
              f'{guards[-1]["timings"]["wall"]:.1f} s, floor '
              f'{floors[-1]["timings"]["wall"]:.1f} s', file=sys.stderr, flush=True)
    guard = medians([flatten(run_, guard=True) for run_ in guards])
    floor = medians([flatten(run_, guard=False) for run_ in floors])
    return {'recipe': floors[0]['recipe'], 'checks': list(guards[0]['checks']),
            'guard_runs': guards, 'floor_runs': floors, 'guard': guard, 'floor': floor,
            'ratio': {'in-process': guard['total, covered'][0] / floor['total'][0],
                      'wall': guard['wall, covered'][0] / floor['wall'][0]}}


def measure_suite(args: argparse.Namespace) -> dict[str, Any]:
    """The CPU test suite, ``--suite-repeat`` times."""
    runs = []
    for index in range(args.suite_repeat):
        runs.append(suite_run(args.suite_args, args.timeout))
        print(f'  suite run {index + 1}/{args.suite_repeat}: {runs[-1][0]:.1f} s',
              file=sys.stderr, flush=True)
    return {'args': args.suite_args, 'walls': [wall for wall, _ in runs], 'summary': runs[-1][1],
            'wall': spread([wall for wall, _ in runs])}


def budgets(sizes: dict[str, dict], suite: dict | None, skip: str | None) -> list[dict]:
    """Each DESIGN.md budget that was measured: figure, limit, OK/OVER."""
    rows = []
    if 'tiny' in sizes:
        note = f' (--skip {skip})' if skip else ''
        rows.append(('tiny check, wall incl. imports' + note,
                     sizes['tiny']['guard']['wall'][0], TINY_WALL_S, 's'))
        others = left_out(sizes['tiny']['checks'])
        if others:
            rows.append((f'  without {",".join(others)} (est.)',
                         sizes['tiny']['guard']['wall, covered'][0], TINY_WALL_S, 's'))
    for size, result in sizes.items():
        for kind, ratio in result['ratio'].items():
            rows.append((f'overhead {size}, {kind}', ratio, OVERHEAD_X, 'x'))
    if 'ddp' in sizes.get('tiny', {}).get('guard', {}):
        rows.append(('ddp check, tiny', sizes['tiny']['guard']['ddp'][0], DDP_S, 's'))
    if suite:
        note = f' ({suite["args"]})' if suite['args'] else ''
        rows.append(('CPU test suite, wall' + note, suite['wall'][0], SUITE_S, 's'))
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


def size_table(size: str, result: dict[str, Any], repeat: int) -> list[str]:
    """Guard and floor side by side, one row per part, with guard/floor."""
    recipe, guard, floor = result['recipe'], result['guard'], result['floor']
    lines = [f'epam-guard check vs floor, size {size} (N={recipe["N"]}, V={recipe["V"]}, '
             f'clips {recipe["rgb"]} + {recipe["pose"]}), median [min-max] of {repeat}, s',
             f'  {"part":<18}{"guard":>23}  {"floor":>23}  {"guard/floor":>11}']
    others = left_out(result['checks'])
    for key in guard:
        if key.endswith('covered') and not others:
            continue  # the same as the plain total
        mine = floor.get(key)
        comparable = mine and mine[0] > 0 and not (others and key in ('checks', 'total', 'wall'))
        ratio = f'{guard[key][0] / mine[0]:10.2f}x' if comparable else ''
        label = {'checks': 'checks | passes', 'wall': 'wall (outside)'}.get(key, key)
        lines.append(f'  {label:<18}{cell(guard[key]):>23}  {cell(mine):>23}  {ratio:>11}')
    if others:
        lines.append(f'  not in the floor: {", ".join(others)}; the "covered" rows leave out '
                     'their seconds and an even share of "between checks"')
    return lines


def overhead_table(sizes: dict[str, dict]) -> list[str]:
    """guard / floor per size, in-process and from outside, over the covered checks."""
    lines = ['overhead: guard / floor over the same checks (budget '
             f'<= {OVERHEAD_X}x; checks the floor lacks are in neither)',
             f'  {"size":<6}{"measure":<12}{"guard s":>9}{"floor s":>9}{"ratio":>8}  checks']
    for size, result in sizes.items():
        covered = ','.join(name for name in result['checks'] if name in COVERED)
        for kind, key, floor_key in (('in-process', 'total, covered', 'total'),
                                     ('wall', 'wall, covered', 'wall')):
            lines.append(f'  {size:<6}{kind:<12}{result["guard"][key][0]:9.2f}'
                         f'{result["floor"][floor_key][0]:9.2f}{result["ratio"][kind]:7.2f}x'
                         f'  {covered}')
    return lines


def report(info: dict, sizes: dict, suite: dict | None, rows: list[dict],
           args: argparse.Namespace) -> str:
    """Every table as plain text."""
    lines = [f'machine: nproc {info["nproc"]}, torch {info["torch"]} (threads '
             f'{info["threads"]}, inter-op {info["interop_threads"]}), python '
             f'{info["python"]}, load average {" ".join(f"{x:.2f}" for x in info["load"])}'
             + ('' if info['nproc'] == 2 else '  (the budgets are for 2 cores)'), '']
    for size, result in sizes.items():
        lines += size_table(size, result, args.repeat) + ['']
    if sizes:
        lines += overhead_table(sizes) + ['']
    if suite:
        lines += [f'CPU test suite (python {shlex.join(SUITE)} {args.suite_args}'.rstrip()
                  + f'), {len(suite["walls"])} run(s): {cell(suite["wall"]).strip()} s',
                  f'  pytest: {suite["summary"]}', '']
    lines.append('budgets (DESIGN.md)')
    width = max([len(row['budget']) for row in rows], default=0)
    lines += [f'  {row["budget"]:<{width}}{row["figure"]:9.2f} {row["unit"]}  <= '
              f'{row["limit"]:<4g} {row["unit"]}  {row["verdict"]}' for row in rows]
    return '\n'.join(lines)


# ---------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='tiny,ntu', help='comma-separated: tiny, ntu')
    parser.add_argument('--repeat', type=int, default=3, help='runs per size (median)')
    parser.add_argument('--batch-size', type=int, default=4, help='N, passed to the guard')
    parser.add_argument('--skip', default=None, metavar='A,B',
                        help='passed to epam-guard check --skip (e.g. the launch checks)')
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
    parser.add_argument('--floor-checks', default='', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [size.strip() for size in args.sizes.split(',') if size.strip()]
    args.suite_repeat = args.suite_repeat or args.repeat
    if min(args.repeat, args.suite_repeat) < 1 or not set(args.sizes) <= {'tiny', 'ntu'}:
        parser.error('--repeat/--suite-repeat must be >= 1 and --sizes tiny and/or ntu')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables; 1 when a subprocess fails."""
    args = parse_args(argv)
    if args.floor_worker:
        floor_worker(args.floor_worker, args.sizes[0], args.batch_size,
                     [name for name in args.floor_checks.split(',') if name])
        return 0
    info = machine()
    try:
        sizes = {size: measure_size(size, args) for size in args.sizes}
        suite = measure_suite(args) if args.suite else None
    except BenchmarkError as exc:
        print(f'benchmark: error: {exc}', file=sys.stderr)
        return 1
    rows = budgets(sizes, suite, args.skip)
    print(report(info, sizes, suite, rows, args))
    if args.json:
        args.json.write_text(json.dumps({'machine': info, 'settings': vars(args) | {
            'json': str(args.json), 'floor_worker': None}, 'sizes': sizes, 'suite': suite,
            'budgets': rows}, indent=2, default=str) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
