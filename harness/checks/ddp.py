"""Check ``ddp``: two ranks train under DistributedDataParallel as MMEngine wraps it.

CONTRACT §6: under ``MMDistributedDataParallel`` with the config's
``model_wrapper_cfg`` / ``find_unused_parameters`` (MMEngine's default:
False), two training steps complete on two ranks and leave the ranks with the
same parameters. The classic way to fail is a parameter that takes no part in
the loss: DDP then stops at the second step with "Expected to have finished
reduction in the prior iteration". The check names those parameters, grouped
by module, from a plain backward each rank runs before wrapping.

Each rank is a fresh Python process (``epam_guard.checks._dist_worker``) on
127.0.0.1 with one thread: gloo on the CPU, nccl when checking on CUDA with
two GPUs visible (one GPU: gloo on the CPU). Each rank trains on its own
synthetic batch of the guard's recipe, at most 2 samples (the rank's seed
differs). The ranks are bounded by 80% of ``--timeout``; whatever
happens they are stopped and reaped before the check returns.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..context import GuardContext
from ..contract import Rule
from ..result import CheckResult, Finding, conclude
from .train_step import group_by_module

WORLD_SIZE = 2
#: Samples per rank: what DDP checks does not depend on N, and each step stays cheap.
RANK_BATCH = 2
#: Seconds a rank may go on after the other failed (it likely waits in a collective).
GRACE = 5.0
DDP_STOPPED = ('Expected to have finished reduction', 'did not receive grad')
FIX = ("make every trainable parameter take part in the loss (or set requires_grad=False on "
       "those that should not train), or set model_wrapper_cfg=dict(type="
       "'MMDistributedDataParallel', find_unused_parameters=True) at a speed cost (DDP then "
       'walks the autograd graph at every step)')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def loopback() -> str | None:
    """The loopback interface's name, so gloo connects the ranks over 127.0.0.1 only."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((name for name in names if name == 'lo'), None) or next(
        (name for name in names if name.startswith('lo')), None)


def backend_for(device: torch.device) -> str:
    """nccl on CUDA with a GPU per rank, gloo (CPU) otherwise."""
    if device.type == 'cuda' and torch.cuda.device_count() >= WORLD_SIZE:
        import torch.distributed as dist

        if dist.is_nccl_available():
            return 'nccl'
    return 'gloo'


def rank_env(rank: int) -> dict[str, str]:
    """The environment of one rank: one thread, torch.distributed's variables, our import path."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get('PYTHONPATH')
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', RANK=str(rank),
               LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), TORCH_DISTRIBUTED_DEBUG='INFO',
               PYTHONPATH=root + (os.pathsep + path if path else ''))
    interface = loopback()
    if interface:
        env['GLOO_SOCKET_IFNAME'] = interface
    return env


def write_spec(ctx: GuardContext, folder: Path, backend: str, budget: float) -> Path:
    """The pickle the ranks read: the checked config itself when it pickles, else its path."""
    settings = ctx.settings
    spec: dict[str, Any] = {
        'config': str(Path(settings.config).resolve()),
        'cfg_options': settings.cfg_options,
        'import_paths': [str(Path(p).resolve()) for p in settings.import_paths],
        'seed': settings.seed, 'backend': backend,
        'recipe': replace(ctx.recipe, batch_size=min(ctx.recipe.batch_size, RANK_BATCH)),
        'init_method': f'tcp://127.0.0.1:{free_port()}', 'world_size': WORLD_SIZE,
        'timeout': budget, 'started': time.time(),
    }
    path = folder / 'spec.pkl'
    try:  # the config the other checks used, edits made after loading included
        payload = pickle.dumps({**spec, 'cfg': ctx.cfg})
    except Exception:  # e.g. a lambda in the config: the ranks re-read the file instead
        payload = pickle.dumps(spec)
    path.write_bytes(payload)
    return path


def succeeded(folder: Path, rank: int) -> bool:
    """Whether an ended rank reported its steps done without an error."""
    path = folder / f'rank{rank}.json'
    if not path.is_file():
        return False
    report = json.loads(path.read_text())
    return report.get('phase') == 'done' and not report.get('error')


def run_ranks(spec: Path, budget: float) -> dict[str, Any]:
    """Start the ranks, wait for them within ``budget`` seconds, always stop and reap them."""
    folder = spec.parent
    procs: list[subprocess.Popen] = []
    outcome: dict[str, Any] = {'timed_out': False, 'stopped': []}
    try:
        for rank in range(WORLD_SIZE):
            with open(folder / f'rank{rank}.log', 'wb') as log:
                procs.append(subprocess.Popen(
                    [sys.executable, '-m', 'epam_guard.checks._dist_worker', str(spec), str(rank)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=rank_env(rank), start_new_session=True))
        deadline, failed_at = time.monotonic() + budget, None
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            if failed_at is None and any(p.poll() is not None and not succeeded(folder, rank)
                                         for rank, p in enumerate(procs)):
                failed_at = now
            if now > deadline:
                outcome['timed_out'] = True
                break
            if failed_at is not None and now - failed_at > GRACE:
                break  # one rank failed and the other still waits for it in a collective
            time.sleep(0.05)
    finally:
        for rank, proc in enumerate(procs):
            if proc.poll() is None:
                outcome['stopped'].append(rank)
                proc.kill()
            proc.wait()
    outcome['exit_codes'] = [p.returncode for p in procs]
    return outcome


def read_reports(folder: Path) -> list[dict[str, Any] | None]:
    reports = []
    for rank in range(WORLD_SIZE):
        path = folder / f'rank{rank}.json'
        reports.append(json.loads(path.read_text()) if path.is_file() else None)
    return reports


def log_tail(folder: Path, rank: int, lines: int = 15) -> list[str]:
    path = folder / f'rank{rank}.log'
    if not path.is_file():
        return []
    return path.read_text(errors='replace').splitlines()[-lines:]


def first_sentence(error: str) -> str:
    """``Type: the first sentence`` of an error text (DDP's run to many lines)."""
    line = next((line.strip() for line in error.splitlines() if line.strip()), error)
    head, dot, _ = line.partition('. ')
    return head + dot.strip()


def ddp_unused(error: str) -> list[str]:
    """The parameter names DDP lists (``TORCH_DISTRIBUTED_DEBUG=INFO``) in its error."""
    match = re.search(r'Parameters which did not receive grad for rank \d+: (.*)', error)
    return [name.strip() for name in match.group(1).split(',')] if match else []


def diagnose(reports: list[dict[str, Any] | None], outcome: dict[str, Any],
             budget: float) -> list[Finding]:
    """Findings from what the ranks reported and how they ended."""
    findings: list[Finding] = []
    if outcome['timed_out']:
        phases = ', '.join(f'rank {r}: {(rep or {}).get("phase", "not started")}'
                           for r, rep in enumerate(reports))
        findings.append(Finding(Rule.STATE,
            f'the 2 ranks did not finish within {budget:g} s ({phases}); '
            'they were stopped (a collective that never completes?)'))
    seen: set[tuple[str, str]] = set()
    for rank, report in enumerate(reports):
        if report is None:
            findings.append(Finding(Rule.STATE, f'rank {rank} exited with status '
                                                f'{outcome["exit_codes"][rank]} without a report'))
            continue
        error = report.get('error')
        if not error:
            if rank in outcome['stopped'] and not outcome['timed_out']:
                findings.append(Finding(Rule.STATE,
                    f'rank {rank} was still in {report["phase"]} '
                    f'{GRACE:g} s after the other rank failed; stopped'))
            continue
        key = (report['phase'], first_sentence(error))
        if key in seen:
            continue
        seen.add(key)
        same = [r for r, rep in enumerate(reports) if rep and rep.get('error')
                and (rep['phase'], first_sentence(rep['error'])) == key]
        who = 'both ranks' if len(same) == WORLD_SIZE else f'rank {rank}'
        if any(marker in error for marker in DDP_STOPPED):
            unused = report.get('no_gradient') or ddp_unused(error)
            groups = group_by_module(unused)
            named = (f'{len(unused)} parameters got no gradient, in {len(groups)} module(s): '
                     f'{groups}' if unused else 'DDP named no parameter')
            findings.append(Finding(Rule.STATE, f'DistributedDataParallel (find_unused_parameters='
                                                f'{report.get("find_unused_parameters")}) stopped '
                                                f'{who} at {report["phase"]} with "{key[1]}": '
                                                f'{named}; {FIX}'))
        else:
            findings.append(Finding(Rule.STATE,
                f'{who} failed in {report["phase"]}: {key[1][:500]}'))
    done = [rep for rep in reports if rep and rep.get('checksum') is not None]
    if not findings and len(done) == WORLD_SIZE:
        a, b = done[0]['checksum'], done[1]['checksum']
        if abs(a - b) > 1e-6 * max(1.0, abs(a)):
            findings.append(Finding(Rule.STATE, f'after {done[0]["steps"]} steps the ranks hold '
                                                f'different parameters (sums {a:.8g} vs {b:.8g}): '
                                                'gradients or updates are not synchronised'))
    return findings


def check(ctx: GuardContext) -> CheckResult:
    """Two ranks complete two train steps under MMEngine's DDP wrapper."""
    budget = 0.8 * ctx.settings.timeout  # so the ranks are stopped before the engine gives up
    backend = backend_for(ctx.device)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='epam-guard-ddp-') as root:
        folder = Path(root)
        spec = write_spec(ctx, folder, backend, budget)
        outcome = run_ranks(spec, budget)
        reports = read_reports(folder)
        findings = diagnose(reports, outcome, budget)
        logs = {rank: log_tail(folder, rank) for rank in range(WORLD_SIZE)} if findings else {}
    first = reports[0] or {}
    unused = first.get('no_gradient') or []
    details = {
        'backend': backend, 'world_size': WORLD_SIZE, 'budget_s': budget,
        'wrapper': first.get('wrapper'),
        'find_unused_parameters': first.get('find_unused_parameters'),
        'no_gradient': group_by_module(unused),
        'losses': {r: (rep or {}).get('losses') for r, rep in enumerate(reports)},
        'rank_seconds': {r: round((rep or {}).get('seconds', 0.0), 2)
                         for r, rep in enumerate(reports)},
        'rank0_reached': first.get('reached'),
        'wall_s': round(time.perf_counter() - start, 2),
        **outcome,
    }
    if logs:
        details['log_tail'] = logs
    if findings:
        details['errors'] = {r: (rep or {}).get('error') for r, rep in enumerate(reports)}
        details['traceback'] = {r: (rep or {}).get('traceback') for r, rep in enumerate(reports)}
    note = (f'; {len(unused)} parameters get no gradient, which find_unused_parameters=True '
            'tolerates at a speed cost' if unused else '')
    return conclude('ddp', findings,
                    f'{first.get("wrapper", "DDP")} ({backend}, find_unused_parameters='
                    f'{first.get("find_unused_parameters")}) completed '
                    f'{first.get("steps", 0)} train steps on {WORLD_SIZE} ranks; their '
                    f'parameters agree{note}', details)
