"""``--launcher pytorch|slurm``: the guard as every rank of the user's own training job.

Started the way training is (MMEngine's launcher names and semantics)::

    torchrun --nproc_per_node=8 -m epam_guard.cli check CONFIG --launcher pytorch
    srun -N2 --ntasks-per-node=8 --gpus-per-node=8 epam-guard check CONFIG --launcher slurm

each process of the job is one rank. It joins the job's process group
(``env_cfg.dist_cfg``'s backend and MMEngine's ``init_dist`` on GPUs; gloo on
a CPU-only machine), runs the selected contract checks on its own device
(``cuda:LOCAL_RANK``, or the CPU), then trains
:data:`~epam_guard.checks._rank.STEPS` iterations of the config's ``Runner`` across
all ranks and nodes with the config's per-GPU batch size (data, workers,
work dir and loop swapped as the ``runner`` check swaps them), recording each
rank's step time and peak GPU memory. Every rank posts its results to the
job's own key-value store (torchrun's agent's, or rank 0's under Slurm);
rank 0 reads them all and prints one report; every rank returns the same
exit status. The store rather than a collective (``all_gather_object``):
a collective waits for a dead or stuck rank, the store does not. The
``runner`` and ``ddp`` checks are replaced by that training run (they would
start Runners and ranks of their own inside the job).

A rank that dies or hangs is named with the phase it was last in (each rank
posts it as it goes): training collectives time out after 75% of
``--timeout``, rank 0 waits at most 20% more for the results, and a rank
whose own part failed drops its process group so that its peers stop
waiting for it at once. When the launcher stops the job (torchrun does when
one rank ends), rank 0 catches the SIGTERM and still reports.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..contract.errors import StopRequested
from ..contract.profiles import Rule
from ..report.result import Finding, conclude
from .supervisor import STOP_SIGNALS

#: Training iterations per rank (``epam_guard.checks._rank.STEPS``, which imports torch).
STEPS = 2

#: Checks a rank of a training job does not run itself: the training run below replaces them.
REPLACED = ('runner', 'ddp')
STORE_PREFIX = 'epam-guard/'
EXIT_OK, EXIT_FAILED = 0, 1


class Stopped(StopRequested):
    """The launcher (torchrun, srun) told this rank to stop, usually because another one ended.

    torchrun passes on the SIGINT, SIGTERM or SIGHUP it got; srun sends SIGTERM.
    """


#: What each launcher puts in the environment of the ranks it starts.
JOB_VARIABLES = {'pytorch': ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                 'slurm': ('SLURM_PROCID', 'SLURM_NTASKS')}


def infer_launcher() -> str:
    """MMEngine's rule: ``WORLD_SIZE`` means torchrun, ``SLURM_NTASKS`` means Slurm."""
    if 'WORLD_SIZE' in os.environ:
        return 'pytorch'
    if 'SLURM_NTASKS' in os.environ:
        return 'slurm'
    return 'none'


def rank_identity(launcher: str) -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from the launcher's environment.

    Raises:
        GuardError: outside a job, naming the variables that are missing.
    """
    env = os.environ
    missing = [name for name in JOB_VARIABLES[launcher] if name not in env]
    if missing:
        from ..contract.errors import GuardError

        job, tool = ('torchrun', 'torchrun') if launcher == 'pytorch' else ('Slurm', 'srun')
        raise GuardError(f'--launcher {launcher} runs as one rank of a {job} job, but '
                         f'{", ".join(missing)} {"is" if len(missing) == 1 else "are"} not set; '
                         f'start it with {tool}')
    if launcher == 'slurm':
        return (int(env['SLURM_PROCID']), int(env.get('SLURM_LOCALID', 0)),
                int(env['SLURM_NTASKS']))
    return int(env['RANK']), int(env['LOCAL_RANK']), int(env['WORLD_SIZE'])


class Board:
    """The job's key-value store (torchrun's agent, or rank 0 under Slurm), as a notice board.

    Each rank posts its phase as it goes and its results at the end. Rank 0
    reads them from there rather than through a collective, so the report
    comes even when a rank died or is stuck: a collective would wait for it.
    """

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.store: Any = None

    def attach(self) -> None:
        import torch.distributed as dist

        with contextlib.suppress(Exception):  # no store (an exotic backend): nothing posted
            self.store = dist.distributed_c10d._get_default_store()

    def _get(self, key: str) -> str | None:
        try:
            if self.store is not None and self.store.check([key]):
                return bytes(self.store.get(key)).decode()
        except Exception:  # the store went away with its host
            return None
        return None

    def phase(self, phase: str) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.set(f'{STORE_PREFIX}phase/{self.rank}', phase)

    def post(self, payload: dict[str, Any], partial: bool = False) -> None:
        """This rank's results: ``partial`` ones (the contract checks) stand in if it never
        posts its final ones."""
        import json

        kind = 'partial' if partial else 'payload'
        if self.store is not None:
            self.store.set(f'{STORE_PREFIX}{kind}/{self.rank}', json.dumps(payload, default=str))

    def phases(self, world_size: int) -> dict[int, str]:
        """Every rank's last phase (``not started`` for one that never posted)."""
        return {rank: self._get(f'{STORE_PREFIX}phase/{rank}') or 'not started'
                for rank in range(world_size)}

    def collect(self, ranks: range | list[int], timeout: float) -> dict[int, dict[str, Any]]:
        """The final payloads of ``ranks`` posted within ``timeout`` seconds (else their
        partial ones, marked ``partial``), by rank."""
        import json

        deadline = time.monotonic() + timeout
        found: dict[int, dict[str, Any]] = {}
        while True:
            for rank in ranks:
                if rank not in found:
                    text = self._get(f'{STORE_PREFIX}payload/{rank}')
                    if text is not None:
                        found[rank] = json.loads(text)
            if len(found) == len(ranks) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for rank in ranks:  # those that never finished: what they posted before, if anything
            text = None if rank in found else self._get(f'{STORE_PREFIX}partial/{rank}')
            if text is not None:
                found[rank] = {**json.loads(text), 'partial': True}
        return found


def contract_checks(settings: Any, names: list[str], device: Any) -> tuple[list[dict], Any]:
    """``names`` but ``runner`` and ``ddp`` on this rank's device; their results and context."""
    from ..model.context import build_context
    from .engine import run_checks

    selected = [name for name in names if name not in REPLACED]
    local = replace(settings, device=str(device))
    ctx = build_context(local)
    return [r.to_json() for r in run_checks(ctx, selected)], ctx


def training_config(ctx: Any, root: Path, launcher: str, device: Any, world_size: int,
                    timeout: float) -> tuple[Any, dict[str, Any]]:
    """The config with data, workers, work dir and loop swapped; batch size as configured."""
    from ..checks._launch import in_process_loaders, synthetic_config
    from ..checks._rank import distribute, loop_of
    from ..checks.ddp import redirect, shrink_pipelines

    batch = int((ctx.cfg.get('train_dataloader') or {}).get('batch_size', 1))
    samples = STEPS * world_size * batch
    cfg, _ = synthetic_config(ctx.cfg, root, num_train=samples, num_val=world_size,
                              seed=ctx.settings.seed)
    in_process_loaders(cfg)
    cfg.work_dir = str(root / 'work_dir')
    cfg.train_cfg = loop_of(cfg.get('train_cfg'), STEPS)
    swaps: dict[str, Any] = {'data': f"synthetic, in the format of the config's datasets, "
                                     f'{samples} training samples',
                             'batch_per_rank': batch, 'num_workers': 0,
                             'train_cfg': dict(cfg.train_cfg),
                             'outputs': redirect(cfg, root / 'outputs')}
    if ctx.settings.size == 'tiny':
        swaps['tiny_pipelines'] = shrink_pipelines(cfg, ctx.recipe)
    swaps['distributed'] = distribute(cfg, launcher, device, timeout)
    return cfg, swaps


def train(cfg: Any, rank: int, device: Any, board: Board) -> dict[str, Any]:
    """The config's Runner for :data:`STEPS` iterations; this rank's record of it."""
    import torch

    from ..checks._rank import StepLog, build_and_train, collect_in_memory

    collect_in_memory()  # nothing written into the user's working directory
    log = StepLog(rank, lambda record: board.phase(record['phase']))
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    console = io.StringIO()
    try:
        # The Runner logs to the console on rank 0; the report is the guard's to print.
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            build_and_train(cfg, log)
        log.finish()
    except Exception:  # recorded by the step log, reported with the others
        log.record['console_tail'] = console.getvalue().splitlines()[-15:]
    record = dict(log.record)
    record.pop('traceback', None)
    if device.type == 'cuda':
        record['peak_memory_mib'] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return record


def merge(payloads: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One result per check over all ranks: it passes only where it passed on every rank."""
    results = []
    for name in [n for n in names if n not in REPLACED]:
        per_rank = [(p['rank'], next((r for r in p.get('results', []) if r['name'] == name),
                                     None)) for p in payloads]
        bad = [(rank, r) for rank, r in per_rank if r is None or r['status'] != 'pass']
        passed = [r for _, r in per_rank if r is not None]
        if not bad:
            first = passed[0]
            results.append({**first, 'verdict': f'{first["verdict"]} (on each of '
                                                 f'{len(payloads)} ranks)',
                            'seconds': max(r['seconds'] for r in passed)})
            continue
        rank, worst = bad[0]
        if worst is None:
            results.append({'name': name, 'status': 'error', 'findings': [], 'warnings': [],
                            'verdict': f'rank {rank} did not run it', 'details': {},
                            'seconds': 0.0})
            continue
        ranks = ', '.join(str(r) for r, _ in bad)
        results.append({**worst, 'verdict': f'on rank(s) {ranks}: {worst["verdict"]}',
                        'details': {'ranks': {r: (x or {}).get('verdict') for r, x in bad}}})
    return results


def training_findings(payloads: list[dict[str, Any]]) -> list[Finding]:
    """How each rank's build and training went wrong, causes before consequences."""
    from ..checks.ddp import PEER_LOST, error_finding, first_sentence

    findings: list[Finding] = []
    records = [p.get('training') or {} for p in payloads]
    for payload, record in zip(payloads, records):
        rank = payload['rank']
        if payload.get('fatal'):
            findings.append(Finding(Rule.STATE, f'rank {rank} could not build the model: '
                                         f'{payload["fatal"]}'))
        elif record.get('error'):
            findings.append(error_finding(record, f'rank {rank}',
                                          first_sentence(record['error'])))
        elif not record.get('finished') or len(record.get('steps', [])) < STEPS:
            done = len(record.get('steps', []))
            findings.append(Finding(Rule.STATE, f'rank {rank} logged {done} of {STEPS} '
                                                f'iterations, last in {record.get("phase")}'))
    # A rank that lost its peer says so; the peer's own failure is the cause: listed first.
    findings.sort(key=lambda f: any(marker in f.message for marker in PEER_LOST))
    return findings


def runner_result(payloads: list[dict[str, Any]], launcher: str) -> dict[str, Any]:
    """The ``runner`` row: the config's Runner built and trained to its end on every rank.

    The job's training run stands in for the ``runner`` check (which would
    start a Runner of its own inside the job), so the report has the same rows
    in every mode.
    """
    records = [p.get('training') or {} for p in payloads]
    validated = all('validation' in (r.get('reached') or {}) for r in records)
    result = conclude('runner', training_findings(payloads),
                      f'the config\'s Runner (launcher={launcher}) built, trained {STEPS} '
                      f'iterations{" and validated" if validated else ""} on each of '
                      f'{len(payloads)} ranks, in the training run that stands in for the '
                      'runner check', {'phases': {p['rank']: r.get('reached')
                                                  for p, r in zip(payloads, records)}})
    result.seconds = max((p.get('training_s', 0.0) for p in payloads), default=0.0)
    return result.to_json()


def training_result(payloads: list[dict[str, Any]], launcher: str) -> dict[str, Any]:
    """The ``ddp`` row: every rank trained every iteration, in step, to the same parameters."""
    findings = training_findings(payloads)
    records = [p.get('training') or {} for p in payloads]
    sums = [float(r['checksum']) for r in records if r.get('checksum') is not None]
    if not findings and len(sums) == len(records):
        low, high = min(sums), max(sums)
        if high - low > 1e-6 * max(1.0, abs(high)):
            findings.append(Finding(Rule.STATE, f'after {STEPS} iterations the ranks hold '
                                                f'different parameters (sums {low:.8g} .. '
                                                f'{high:.8g})'))
    table = {p['rank']: {'host': p.get('host'), 'device': p.get('device'),
                         'batch': (p.get('swaps') or {}).get('batch_per_rank'),
                         'step_s': [s['seconds'] for s in (r.get('steps') or [])],
                         'peak_memory_mib': r.get('peak_memory_mib'),
                         'phase': r.get('phase')} for p, r in zip(payloads, records)}
    first = records[0] if records else {}
    swaps = (payloads[0].get('swaps') or {}) if payloads else {}
    result = conclude('ddp', findings,
                      f'{first.get("wrapper", "DDP")} (launcher={launcher}, '
                      f'{len(payloads)} ranks, batch {swaps.get("batch_per_rank")} per rank) '
                      f'trained {STEPS} iterations of the config\'s Runner on every rank; '
                      'their parameters agree',
                      {'ranks': table, 'swapped': swaps})
    result.seconds = max((p.get('training_s', 0.0) for p in payloads), default=0.0)
    return result.to_json()


def lost_result(missing: list[int], phases: dict[int, str], reason: str | None) -> dict:
    """The row that names the ranks whose results never came, with their last phase."""
    named = ', '.join(f'rank {r} (last in {phases.get(r, "not started")})' for r in missing)
    finding = Finding(Rule.STATE, f'not every rank reported: {named}'
                                  + (f'; {reason}' if reason else ''))
    return conclude('ranks', [finding], '', {'phases': phases, 'missing': missing,
                                            'reason': reason}).to_json()


def failed(payload: dict[str, Any]) -> bool:
    """Whether this rank's own part already failed (then the job's status is 1)."""
    training = payload.get('training') or {}
    return bool(payload.get('fatal') or training.get('error')
                or any(r['status'] in ('fail', 'error') for r in payload.get('results', [])))


def print_report(results: list[dict[str, Any]], header: str,
                 cause: dict[str, Any] | None = None, interrupted: str | None = None) -> None:
    """The header, a row per check (the CLI's), a line per rank of the training run, the
    root cause when there is one, why the run was stopped, the counts."""
    from ..report.console import Console

    console = Console()
    console.line(header)
    for result in results:
        console.result(result)
    training = next((r for r in results if r['name'] == 'ddp'), {})
    for rank, row in sorted(((training.get('details') or {}).get('ranks') or {}).items()):
        steps = ', '.join(f'{s:.2f}s' for s in row.get('step_s') or [])
        memory = (f'  peak GPU memory {row["peak_memory_mib"]:.0f} MiB'
                  if row.get('peak_memory_mib') is not None else '')
        console.line(f'{"":27}rank {rank}  {row.get("host")}  {row.get("device")}  batch '
                     f'{row.get("batch")}  steps {steps or "-"}{memory}')
    if cause is not None:
        console.line(f'ROOT CAUSE: {cause["message"]}')
    if interrupted:
        console.line(f'interrupted: {interrupted}')
    failed = [r['name'] for r in results if r['status'] in ('fail', 'error')]
    console.line(f'{len(results) - len(failed)} passed, {len(failed)} failed'
                 + (f' ({", ".join(failed)})' if failed else ''))


def run(settings: Any, names: list[str], json_path: Path | None = None,
        junit_path: Path | None = None) -> int:
    """Run as one rank of a ``torchrun``/``srun`` job; rank 0 prints the one report.

    Args:
        settings: the run's ``GuardSettings`` (``launcher`` read from it when set, else
            inferred from the environment as MMEngine does).
        names: the selected checks; each runs on every rank, except ``runner`` and
            ``ddp``, which the job-wide training run replaces.
        json_path, junit_path: where rank 0 writes the machine-readable reports.

    Returns:
        The exit status, the same on every rank: 0 all passed, 1 otherwise.
    """
    launcher = getattr(settings, 'launcher', None) or infer_launcher()
    if launcher not in ('pytorch', 'slurm'):
        from ..contract.errors import GuardError

        raise GuardError('--launcher pytorch|slurm runs inside a torchrun/srun job, but no '
                         'WORLD_SIZE or SLURM_NTASKS is set; start it with torchrun or srun')
    rank, local_rank, world_size = rank_identity(launcher)

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    timeout = float(settings.timeout)
    board = Board(rank)
    started = time.perf_counter()
    node = os.environ.get('GROUP_RANK') or os.environ.get('SLURM_NODEID') or '0'
    payload: dict[str, Any] = {'rank': rank, 'local_rank': local_rank, 'node': node,
                               'host': socket.gethostname()}
    payloads: dict[int, dict[str, Any]] = {}
    reason: str | None = None
    stopped: Stopped | None = None
    try:
        payload.update(take_part(settings, names, launcher, payload, world_size, timeout,
                                 board))
        board.phase('done')
        board.post(payload)
        if rank == 0 or not failed(payload):
            payloads = board.collect(range(world_size), 0.2 * timeout)
        else:
            # This rank knows the job's status already. Its end makes the launcher stop the
            # job, so it first gives rank 0 the time to report.
            board.collect([0], min(10.0, 0.2 * timeout))
            payloads = {rank: payload}
    except Stopped as exc:
        stopped = exc
        reason = f'the launcher stopped rank {rank} ({exc}), as it does when a rank ends'
        with contextlib.suppress(Stopped):
            payloads = board.collect(range(world_size), 1.0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = report(rank, world_size, names, payloads, reason, board, launcher,
                  time.perf_counter() - started, json_path, junit_path)
    if stopped is not None:
        code = stopped.exit_code  # told to stop: the run ends as interrupted, on every rank
    with contextlib.suppress(Exception):
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return code


def take_part(settings: Any, names: list[str], launcher: str, identity: dict[str, Any],
              world_size: int, timeout: float, board: Board) -> dict[str, Any]:
    """This rank's part: join the job, the contract checks, the training run; its results.

    The contract checks' results are posted as soon as they are known (marked
    ``partial``), so a rank stopped during training still has them reported.
    """
    begun = time.perf_counter()
    from ..checks._rank import cuda_device, distribute, init_process_group, name_unused_parameters
    from ..model.context import load_config
    from .worker import header

    imports = time.perf_counter() - begun  # torch and MMEngine, as a supervised run times them
    rank, local_rank = identity['rank'], identity['local_rank']

    device = cuda_device(local_rank)
    part: dict[str, Any] = {'device': str(device)}
    cfg = load_config(settings.config, settings.cfg_options, settings.import_paths)
    distribute(cfg, launcher, device, 0.75 * timeout)
    name_unused_parameters()
    if device.type == 'cuda':
        import torch

        torch.cuda.set_device(device)
    init_process_group(cfg, launcher, device)
    board.attach()
    board.phase('contract checks')
    ctx = None
    try:
        part['results'], ctx = contract_checks(settings, names, device)
        part['header'] = header(ctx, imports)  # what a supervised run's report says first
    except Exception as exc:  # an unusable config or model: reported, training skipped
        from ..contract.errors import one_line

        part['fatal'] = one_line(exc)
    board.post({**identity, **part}, partial=True)
    if any(name in REPLACED for name in names) and ctx is not None:
        with tempfile.TemporaryDirectory(prefix=f'epam-guard-rank{rank}-') as folder:
            cfg, part['swaps'] = training_config(ctx, Path(folder), launcher, device,
                                                 world_size, 0.75 * timeout)
            training = time.perf_counter()
            part['training'] = train(cfg, rank, device, board)
            part['training_s'] = round(time.perf_counter() - training, 2)
    if failed(part):
        import torch.distributed as dist

        # Peers waiting for this rank in a collective get an error now, not at the timeout.
        dist.destroy_process_group()
    return part


def nodes_of(payloads: list[dict[str, Any]]) -> int:
    """Distinct (host, node rank) pairs: several agents on one machine count as nodes."""
    return len({(p.get('host'), p.get('node')) for p in payloads})


def report(rank: int, world_size: int, names: list[str], payloads: dict[int, dict[str, Any]],
           reason: str | None, board: Board, launcher: str, seconds: float,
           json_path: Path | None, junit_path: Path | None) -> int:
    """Rank 0 prints and writes the report; every rank returns the status it implies."""
    present = [payloads[r] for r in sorted(payloads)]
    final = [p for p in present if not p.get('partial')]
    # A rank stopped by the launcher reports the others, not its own unfinished part.
    missing = [r for r in range(world_size) if (r not in payloads or payloads[r].get('partial'))
               and not (reason and r == rank)]
    rows = {row['name']: row for row in (merge(present, names) if present else [])}
    if final:
        for name, row_of in (('runner', runner_result), ('ddp', training_result)):
            if name in names:
                rows[name] = row_of(final, launcher)
    # The same rows, in the same order, as a supervised run of these checks.
    results = [rows[name] for name in names if name in rows]
    if missing:  # before the training rows: a missing rank is why the others failed there
        at = next((i for i, r in enumerate(results) if r['name'] in REPLACED), len(results))
        results.insert(at, lost_result(missing, board.phases(world_size), reason))
    code = EXIT_FAILED if any(r['status'] in ('fail', 'error') for r in results) else EXIT_OK
    if rank == 0:
        header = next((p['header'] for p in present if p.get('header')), None)
        lines = [f'  launcher={launcher}  world size {world_size}  '
                 f'{nodes_of(present)} node(s)  {seconds:.1f}s']
        from ..report.console import header_line, report_meta, root_cause_summary

        if header:
            lines.append(header_line(header))
        cause = root_cause_summary(results, (header or {}).get('recipe'),
                                   (header or {}).get('contract'))
        print_report(results, '\n'.join(lines), cause, reason)
        timings = {**(header or {}).get('timings', {}),
                   'checks': sum(r.get('seconds', 0.0) for r in results), 'total': seconds}
        fatal = next((p['fatal'] for p in present if p.get('fatal')), None)
        meta = {**report_meta(header, names, code, cause,
                              {'message': fatal} if fatal else None, reason, timings),
                'launcher': launcher, 'world_size': world_size, 'seconds': round(seconds, 2),
                'missing_ranks': missing,
                'ranks': [{k: v for k, v in p.items() if k not in ('results', 'header')}
                          for p in present]}
        from ..report.formats import write_json, write_junit

        if json_path:
            write_json(Path(json_path), results, meta)
        if junit_path:
            write_junit(Path(junit_path), results)
    sys.stdout.flush()
    return code
