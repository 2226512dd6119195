"""Check ``ddp``: two ranks train through the config's Runner under DDP, started by torch's agent.

CONTRACT §6: under ``MMDistributedDataParallel`` with the config's
``model_wrapper_cfg`` / ``find_unused_parameters`` (MMEngine's default:
False), training iterations complete on two ranks and leave them with the
same parameters. The classic way to fail is a parameter that takes no part in
the loss: DDP stops at the second iteration with "Expected to have finished
reduction in the prior iteration"; the check names those parameters by
module, with the fix (or, for a parameter made anew in ``forward``, says so).

The ranks are started by PyTorch's elastic agent (``torch.distributed.run``'s
engine, :func:`torch.distributed.launcher.api.elastic_launch`) in this
process: a c10d rendezvous on 127.0.0.1 whose store binds its own port, two
forked workers that stay in this process's group and die with it
(``PR_SET_PDEATHSIG``), no restarts, a failed rank stopping its sibling. Each
rank builds the config's ``Runner`` with ``launcher='pytorch'`` and trains
:data:`~epam_guard.checks._rank.STEPS` iterations, with what the ``runner`` check
swaps (synthetic data, ``num_workers=0``, a temporary work dir, a short
loop) and, here, two samples per rank, at ``--size tiny`` the pipelines'
clips shrunk to the guard's sizes, and on the CPU ``gloo`` with
``device_ids=None``. The check passes only on each rank's own log of every
iteration it was to run; the ranks are stopped once none of them has made
progress (logged a new phase) for 80% of ``--timeout``
and every rank is stopped and reaped whatever happens.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..contract.profiles import Rule
from ..model.context import GuardContext
from ..report.result import CheckResult, Finding, conclude
from ._launch import SAMPLERS, in_process_loaders, synthetic_config, unrepeated
from ._rank import STEPS, distribute, loop_of
from .train_step import group_by_module

WORLD_SIZE = 2
#: Samples per rank and iteration: what DDP checks does not depend on N; each step stays cheap.
RANK_BATCH = 2


def start_method() -> str:
    """How the agent starts the ranks: ``fork`` unless this process has initialised CUDA.

    Forked ranks inherit this process's imports (torch, MMEngine, MMAction2,
    the model's modules: seconds per rank on a laptop CPU) and run with one
    intra-op thread, as DataLoader workers do. CUDA cannot be used in a child
    forked after it was initialised, so then the ranks are spawned.
    """
    return 'spawn' if torch.cuda.is_initialized() else 'fork'

#: Seconds the other ranks get to end after one failed, before they are killed.
GRACE = 5.0
#: What a rank's collective says when its peer died: a consequence, reported after the cause.
PEER_LOST = ('Connection closed by peer', 'Connection reset by peer', 'remote worker',
             'Broken pipe')
FIX = ("make every trainable parameter take part in the loss (or set requires_grad=False on "
       "those that should not train), or set model_wrapper_cfg=dict(type="
       "'MMDistributedDataParallel', find_unused_parameters=True) at a speed cost (DDP then "
       'walks the autograd graph at every step)')
RECREATED_FIX = ("create every parameter once, in __init__: a new nn.Parameter made in "
                 "forward is not the one DDP (or the optimizer) holds, so it never trains; "
                 "find_unused_parameters=True would hide this, not fix it")


#: Transforms whose output size is one number, by the key that holds it.
CROP_SIZES = {'CenterCrop': 'crop_size', 'ThreeCrop': 'crop_size', 'TenCrop': 'crop_size',
              'MultiScaleCrop': 'input_size'}


def _shrunk_scale(scale: Any, side: int) -> Any:
    """A ``Resize`` scale at ``side``: ``(-1, 256)`` keeps its free side, a fixed one is square."""
    if isinstance(scale, (tuple, list)) and len(scale) == 2:
        return tuple(-1 if value == -1 else side for value in scale)
    return scale


def shrink_pipelines(cfg: Any, recipe: Any) -> list[str]:
    """Clip lengths and spatial sizes of every pipeline set to the guard's tiny recipe.

    Every transform is kept; only sizes change. Keeps the channels, the
    views (``num_clips``, crops), the RGB:pose frame ratio and the heat maps'
    scaling (they scale with the crop). The samplers' ``clip_len`` becomes what
    makes the recipe's frames (:func:`epam_guard.model.batch.sampler_clip_len`), or
    stays where the frames are part of the model (a 2-D model's segments: TSM
    shifts across ``num_segments``); crops and resizes take the recipe's crop.
    Returns what was changed.
    """
    from ..fixtures.datasets import find_datasets
    from ..model.batch import sampler_clip_len

    clip_len = None if recipe.keep_time else sampler_clip_len(recipe)
    side = recipe.crop
    changed = []
    for data in find_datasets(cfg):
        for step in data.pipeline:
            kind_name = str(step.get('type'))
            if kind_name in SAMPLERS and step.get('clip_len') is not None \
                    and clip_len is not None:
                step['clip_len'] = clip_len
            elif kind_name == 'Resize' and isinstance(step.get('scale'), (tuple, list)):
                step['scale'] = _shrunk_scale(step['scale'], side)
            elif kind_name in CROP_SIZES and step.get(CROP_SIZES[kind_name]) is not None:
                step[CROP_SIZES[kind_name]] = side
            else:
                continue
            changed.append(f'{data.loader}.{kind_name}')
    return sorted(set(changed))


def prepare(ctx: GuardContext, root: Path) -> tuple[Any, dict[str, Any]]:
    """The config the ranks train: the user's, with the swaps this check makes, and them."""
    samples = STEPS * WORLD_SIZE * RANK_BATCH
    cfg, synthetic = synthetic_config(ctx.cfg, root, num_train=samples, num_val=WORLD_SIZE,
                                      seed=ctx.settings.seed,
                                      num_classes=ctx.recipe.num_classes)
    train = cfg.get('train_dataloader')
    batch = int(train.get('batch_size', 1))
    train.batch_size = RANK_BATCH
    in_process_loaders(cfg)
    cfg.work_dir = str(root / 'work_dir')
    cfg.train_cfg = loop_of(cfg.get('train_cfg'), STEPS)
    swaps: dict[str, Any] = {
        'data': synthetic.describe(), 'unrepeated': unrepeated(cfg),
        'train_batch_per_rank': f'{RANK_BATCH} (config: {batch})',
        'num_workers': 0, 'work_dir': 'temporary', 'train_cfg': dict(cfg.train_cfg),
        'outputs': redirect(cfg, root / 'outputs'),
    }
    if ctx.settings.size == 'tiny':
        swaps['tiny_pipelines'] = shrink_pipelines(cfg, ctx.recipe)
    device = ctx.device if ctx.device.type == 'cuda' and (
        torch.cuda.device_count() >= WORLD_SIZE) else torch.device('cpu')
    swaps['distributed'] = distribute(cfg, 'pytorch', device, budget_of(ctx))
    return cfg, swaps


def redirect(cfg: Any, folder: Path) -> dict[str, Any]:
    """Every output path of ``cfg`` under ``folder``, as the ``runner`` check redirects them.

    ``load_from``/``resume`` are dropped: the real run's checkpoint is never read.
    """
    try:
        from ._outputs import redirect_outputs
    except ImportError:  # an install without the runner check's output redirection
        ignored = {key: cfg.get(key) for key in ('load_from', 'resume') if cfg.get(key)}
        cfg.load_from, cfg.resume = None, False
        return {'ignored': ignored}
    return redirect_outputs(cfg, folder)


def preload(cfg: Any) -> None:
    """Import here what the ranks' Runner would import (datasets, metrics, SciPy, Matplotlib).

    Forked ranks inherit it: paid once in this process instead of once per
    rank, which on a 2-core machine is most of a rank's start-up.
    """
    import importlib

    scope = cfg.get('default_scope') or 'mmengine'
    with contextlib.suppress(ImportError):
        registries = importlib.import_module(f'{scope}.registry')
        for name in ('DATASETS', 'TRANSFORMS', 'DATA_SAMPLERS', 'METRICS', 'EVALUATOR',
                     'VISUALIZERS', 'VISBACKENDS', 'HOOKS', 'LOOPS', 'OPTIM_WRAPPERS',
                     'PARAM_SCHEDULERS', 'MODEL_WRAPPERS', 'LOG_PROCESSORS'):
            registry = getattr(registries, name, None)
            with contextlib.suppress(Exception):  # a scope without that location
                registry.import_from_location()  # type: ignore[union-attr]
    with contextlib.suppress(ImportError):  # what MMEngine's Visualizer draws with
        importlib.import_module('matplotlib.backends.backend_agg')
        importlib.import_module('matplotlib.figure')


def budget_of(ctx: GuardContext) -> float:
    """Seconds the ranks may go without progress: 80% of ``--timeout``, so that they are
    stopped before the supervisor acts (its clock restarts at their progress too)."""
    return 0.8 * float(ctx.settings.timeout)


def rank_spec(ctx: GuardContext, cfg: Any, root: Path) -> dict[str, Any]:
    """What each rank needs: the prepared config, import paths, where to log.

    Handed to forked ranks as it is (nothing is pickled or written, so a
    config with lambdas works); spawned ranks (see :func:`start_method`) get
    it pickled through a pipe, never on disk.
    """
    return {'cfg': cfg, 'import_paths': [str(Path(p).resolve())
                                         for p in ctx.settings.import_paths],
            'folder': str(root), 'parent': os.getpid(),
            'cuda': cfg.env_cfg.dist_cfg.backend != 'gloo'}


@contextlib.contextmanager
def quiet_agent() -> Any:
    """The agent's own logging kept off the console, its process-wide edits put back."""
    loggers = [logging.getLogger(name) for name in (
        'torch.distributed.elastic', 'torch.distributed.launcher', 'torch.multiprocessing',
        'torchelastic-events-null')]
    levels = [logger.level for logger in loggers]
    env = os.environ.get('TORCHELASTIC_SIGNALS_TO_HANDLE')
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if env is None:
            os.environ.pop('TORCHELASTIC_SIGNALS_TO_HANDLE', None)
        else:
            os.environ['TORCHELASTIC_SIGNALS_TO_HANDLE'] = env


class Launch:
    """``elastic_launch`` of the ranks in a thread, so this thread can keep the clock.

    Whether the agent has ended is an event the thread sets as its last act,
    not ``Thread.is_alive()``: on Python 3.11 a ``Thread.join`` that a
    KeyboardInterrupt cuts short releases the running thread's state lock and
    marks it stopped (the bpo-45274 handling), so after a Ctrl-C the agent
    looked ended while it was still starting or stopping ranks; the check then
    returned early and the interpreter's exit waited on a rank forked after
    the last stop, or aborted freeing the agent's store under it.
    """

    def __init__(self, spec: dict[str, Any], root: Path) -> None:
        from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
        from torch.distributed.launcher.api import LaunchConfig

        self.spec, self.root = spec, root
        self.config = LaunchConfig(
            min_nodes=1, max_nodes=1, nproc_per_node=WORLD_SIZE,
            run_id=f'epam-guard-{uuid.uuid4().hex[:8]}',
            rdzv_backend='c10d', rdzv_endpoint='127.0.0.1:0',  # the store binds its own port
            max_restarts=0, monitor_interval=0.05, start_method=start_method(),
            local_addr='127.0.0.1', shutdown_timeout=2,
            logs_specs=DefaultLogsSpecs(log_dir=str(root / 'logs'), redirects=Std.ALL))
        self.failures: dict[int, Any] = {}
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._run, name='epam-guard-ddp-agent',
                                       daemon=True)

    def _run(self) -> None:
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.launcher.api import elastic_launch

        from ._rank import check_rank

        try:
            elastic_launch(self.config, check_rank)(self.spec)
        except ChildFailedError as exc:
            self.failures = dict(exc.failures)
        except BaseException as exc:  # the agent itself failed (rendezvous, spawn)
            self.error = exc
        finally:
            self.ended.set()

    def start(self) -> None:
        self.thread.start()

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the agent to end; whether it has."""
        return self.ended.wait(seconds)

    def done(self) -> bool:
        return self.ended.is_set()


def release_agent() -> None:
    """Free what the ended agent left in reference cycles, now.

    Its rendezvous store runs a C++ server thread. Left to the garbage
    collector, it was often freed only at the interpreter's exit, after
    Python had begun to finalise: the process then aborted ("terminate called
    without an active exception") or did not end.
    """
    import gc

    gc.collect()


def read_logs(root: Path) -> list[dict[str, Any] | None]:
    """Each rank's own record of its progress (``None``: it never wrote one)."""
    records: list[dict[str, Any] | None] = []
    for rank in range(WORLD_SIZE):
        path = root / f'rank{rank}.json'
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            records.append(None)
    return records


def ended(record: dict[str, Any] | None) -> bool:
    """Whether the process that wrote ``record`` is gone (or a zombie)."""
    import psutil

    if not record or 'pid' not in record:
        return False
    try:
        return psutil.Process(record['pid']).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def rank_processes(records: list[dict[str, Any] | None], before: set[int]) -> list[Any]:
    """This run's rank processes: the pids they logged, and any child started since."""
    import psutil

    procs: dict[int, Any] = {}
    for record in records:
        with contextlib.suppress(psutil.Error, TypeError, KeyError):
            procs[record['pid']] = psutil.Process(record['pid'])  # type: ignore[index]
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.pid not in before and 'resource_tracker' not in ' '.join(child.cmdline()):
                procs[child.pid] = child
    return list(procs.values())


def stop(procs: list[Any]) -> list[int]:
    """SIGKILL ``procs``; the agent reaps them. Returns the pids that were still running."""
    import psutil

    killed = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
                killed.append(proc.pid)
    return killed


#: Seconds between two looks at the ranks' logs while they run.
POLL = 0.1
#: Seconds the agent gets to end once its ranks were stopped: after an interruption (the
#: user waits), and otherwise (it reports how its ranks ended).
STOP_WAIT = {True: 5.0, False: 15.0}


class Watch:
    """What the guard sees of the ranks while they run: facts the report is built from.

    ``exits`` holds every rank process's exit status (``multiprocessing`` keeps
    them for its children: the agent's reaping does not lose them), ``ended``
    when each rank was first seen gone, ``killed`` the pids the guard itself
    stopped. Which rank failed first then follows from what each rank logged
    and how it ended, not from which process the agent happened to reap first.
    """

    def __init__(self, root: Path) -> None:
        import psutil

        self.root = root
        self.before = {child.pid for child in psutil.Process().children(recursive=True)}
        self.procs: dict[int, Any] = {}
        self.ended: dict[int, float] = {}
        self.killed: set[int] = set()

    def look(self) -> list[dict[str, Any] | None]:
        """The ranks' logs now; notes the processes alive and the ranks that ended."""
        import multiprocessing

        for proc in multiprocessing.active_children():
            if proc.pid is not None:
                self.procs.setdefault(proc.pid, proc)
        records = read_logs(self.root)
        for rank, record in enumerate(records):
            if record and not record.get('finished') and rank not in self.ended \
                    and ended(record):
                self.ended[rank] = time.time()
        return records

    def stop(self) -> None:
        """SIGKILL every rank process of the run (and any child started since it began)."""
        self.killed.update(stop(rank_processes(read_logs(self.root), self.before)))

    def stop_all(self, launch: Launch, within: float) -> None:
        """Stop the ranks until the agent has ended or ``within`` seconds passed.

        The agent may still be starting a rank while the others are stopped:
        each look stops whatever appeared since, so nothing is left for the
        interpreter's exit (which joins its children) to wait on.
        """
        deadline = time.monotonic() + within
        while True:
            self.stop()
            if launch.wait(0.2) or time.monotonic() > deadline:
                break
        self.stop()  # whatever the agent started in its last moment

    def exit_statuses(self, records: list[dict[str, Any] | None]) -> dict[int, int]:
        """Each rank's exit status (negative: the signal), where its process was seen."""
        found = {}
        for rank, record in enumerate(records):
            proc = self.procs.get((record or {}).get('pid', -1))
            if proc is not None and proc.exitcode is not None:
                found[rank] = int(proc.exitcode)
        return found


def run_ranks(spec: dict[str, Any], root: Path, budget: float,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Launch the ranks; stop them once none has made progress for ``budget`` seconds; stop
    and reap them on every way out.

    Progress is a rank logging a new phase (start-up, rendezvous, build, each
    iteration): a loaded machine makes the ranks slow, a hang makes them
    still. ``progress`` hears of each (the supervisor's clock restarts on it).
    Interrupted (KeyboardInterrupt, a signal turned into an exception), the
    ranks are stopped and this returns within :data:`STOP_WAIT` seconds,
    whatever phase they were in.
    """
    watch = Watch(root)
    launch = Launch(spec, root)
    outcome: dict[str, Any] = {'timed_out': False, 'stopped': [], 'early_exit': []}
    launched = last_progress = time.monotonic()
    phases: list[str | None] = [None] * WORLD_SIZE
    failed_at = None
    interrupted = False
    with quiet_agent():
        try:
            launch.start()  # inside: an interrupt as the agent starts stops what it started
            while not launch.done():
                launch.wait(POLL)
                now = time.monotonic()
                for rank, record in enumerate(watch.look()):
                    phase = (record or {}).get('phase')
                    if phase != phases[rank]:
                        phases[rank], last_progress = phase, now
                        if progress is not None:
                            progress(f'ddp rank {rank}: {phase}')
                if watch.ended and failed_at is None:
                    # A rank ended without finishing and without the agent seeing a failure
                    # (exit status 0): the others wait for it in a collective.
                    failed_at, outcome['early_exit'] = now, sorted(watch.ended)
                if now > last_progress + budget:
                    outcome['timed_out'] = True
                    break
                if failed_at is not None and now - failed_at > GRACE:
                    break
        except BaseException:  # KeyboardInterrupt, a signal turned into an exception
            interrupted = True
            raise
        finally:
            if interrupted or not launch.done():
                records = watch.look()
                outcome['stopped'] = sorted(
                    rec['rank'] for rec in records
                    if rec and not ended(rec) and not rec.get('finished'))
                watch.stop_all(launch, STOP_WAIT[interrupted])
            if launch.done():
                release_agent()
    # From the launch: to the last progress, and to the last rank reaped.
    outcome['progress_s'] = round(last_progress - launched, 2)
    outcome['ranks_s'] = round(time.monotonic() - launched, 2)
    records = watch.look()
    outcome['failures'] = {
        int(rank): {'exitcode': failure.exitcode, 'signal': failure.signal_name()
                    if failure.exitcode is not None and failure.exitcode < 0 else None,
                    'pid': failure.pid}
        for rank, failure in launch.failures.items()}
    outcome['exits'] = watch.exit_statuses(records)
    outcome['ended_at'] = dict(watch.ended)
    outcome['killed_by_guard'] = sorted(
        r for r, rec in enumerate(records) if rec and rec.get('pid') in watch.killed)
    if launch.error is not None:
        outcome['agent_error'] = f'{type(launch.error).__name__}: {launch.error}'
    return outcome


def describe_exit(code: int) -> str:
    """``was killed by SIGKILL (...)`` / ``exited with status 3``."""
    from ..probe.processes import describe_exit as described

    return described(int(code))


def first_sentence(error: str) -> str:
    """``Type: the first sentence`` of an error text (DDP's run to many lines)."""
    line = next((line.strip() for line in error.splitlines() if line.strip()), error)
    head, dot, _ = line.partition('. ')
    return head + dot.strip()


def log_tail(root: Path, rank: int, lines: int = 12) -> list[str]:
    """The last lines a rank printed (the agent redirected them into ``root/logs``)."""
    found = sorted((root / 'logs').glob(f'*/attempt_*/{rank}/std*.log'))
    text = []
    for path in found:
        with contextlib.suppress(OSError):
            text += path.read_text(errors='replace').splitlines()
    return text[-lines:]


def diagnose(records: list[dict[str, Any] | None], outcome: dict[str, Any],
             budget: float) -> list[Finding]:
    """Findings from what the ranks logged and how they ended, causes before consequences.

    A cause is a rank's own end: an exception it logged, or an exit or signal
    without one; causes come in the order they happened (the time a rank
    logged its error, or was first seen gone). Consequences follow: a rank
    whose collective lost its peer, one torch's agent stopped (SIGTERM) after
    another failed, one the guard stopped. Without any finding the ranks must
    still have logged every iteration (:func:`finished_all`): a pass needs
    that evidence, not the absence of errors.
    """
    findings: list[Finding] = []
    if outcome['timed_out']:
        phases = ', '.join(f'rank {r}: {(rec or {}).get("phase", "not started")}'
                           for r, rec in enumerate(records))
        findings.append(Finding(Rule.STATE,
            f'the {WORLD_SIZE} ranks made no progress for {budget:g} s ({phases}); '
            'they were stopped by the guard (a collective that never completes, or a hang '
            'in model code?)'))
    causes, after = logged_errors(records)
    ends = ranks_ended(records, outcome)
    for rank, (code, phase) in ends.items():
        if code is not None and code != -signal.SIGTERM:
            what = (f'exited with status 0 in {phase} before finishing its {STEPS} iterations '
                    '(os._exit or sys.exit(0) in model code?)' if code == 0 else
                    f'{describe_exit(code)} in {phase}, without a Python exception')
            causes.append((outcome.get('ended_at', {}).get(rank, math.inf), rank,
                           Finding(Rule.STATE, f'rank {rank} {what}')))
    causes.sort(key=lambda cause: (cause[0], cause[1]))
    first = f'rank {causes[0][1]}' if causes else 'another rank'
    for rank, (code, phase) in ends.items():
        if code == -signal.SIGTERM and not causes:
            causes.append((math.inf, rank, Finding(
                Rule.STATE, f'rank {rank} {describe_exit(code)} in {phase}, without a Python '
                            'exception')))
        elif code == -signal.SIGTERM:
            after.append(Finding(Rule.STATE, f'rank {rank} was stopped by torch\'s agent '
                                             f'(SIGTERM) in {phase} after {first} failed'))
        elif code is None:
            seen = (f'rank {rank} ended in {phase} without a Python exception (its exit '
                    'status was not seen)')
            if causes:
                after.append(Finding(Rule.STATE, f'{seen}, after {first} failed'))
            else:
                causes.append((math.inf, rank, Finding(Rule.STATE, seen)))
    if not outcome['timed_out']:
        for rank in outcome.get('stopped', []):
            phase = (records[rank] or {}).get('phase', 'start-up')
            after.append(Finding(Rule.STATE, f'rank {rank} was still in {phase} {GRACE:g} s '
                                             f'after {first} failed; stopped by the guard'))
    findings += [finding for _, _, finding in causes]
    findings += sorted(after, key=lambda f: 'stopped by' in f.message)
    done = [rec for rec in records if rec and rec.get('checksum') is not None]
    if not findings and len(done) == WORLD_SIZE:
        a, b = done[0]['checksum'], done[1]['checksum']
        if abs(a - b) > 1e-6 * max(1.0, abs(a)):
            findings.append(Finding(Rule.STATE, f'after {STEPS} iterations the ranks hold '
                                                f'different parameters (sums {a:.8g} vs {b:.8g}): '
                                                'gradients or updates are not synchronised'))
    if not findings and not finished_all(records):
        findings.append(Finding(Rule.STATE, 'the ranks ended without logging every iteration '
                                            f'they were to run: {progress(records)}'))
    return findings


Cause = tuple[float, int, Finding]


def logged_errors(records: list[dict[str, Any] | None]) -> tuple[list[Cause], list[Finding]]:
    """The exceptions the ranks logged: causes (with when), and peers that lost a rank.

    The same error on every rank is one finding naming both ranks.
    """
    causes: list[Cause] = []
    lost: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for rank, record in enumerate(records):
        error = (record or {}).get('error')
        if not error:
            continue
        key = (record['phase'], first_sentence(error))  # type: ignore[index]
        if key in seen:
            continue
        seen.add(key)
        same = [r for r, rec in enumerate(records) if rec and rec.get('error')
                and (rec['phase'], first_sentence(rec['error'])) == key]
        who = 'both ranks' if len(same) == WORLD_SIZE else f'rank {rank}'
        found = error_finding(record, who, key[1])  # type: ignore[arg-type]
        if any(marker in error for marker in PEER_LOST):
            lost.append(found)  # a consequence: the peer's own end is the cause
        else:
            causes.append((float(record.get('failed_at') or math.inf), rank,  # type: ignore[union-attr]
                           found))
    return causes, lost


def ranks_ended(records: list[dict[str, Any] | None],
                outcome: dict[str, Any]) -> dict[int, tuple[int | None, str]]:
    """Ranks that ended unfinished without an exception and not by the guard's hand:
    ``{rank: (exit status or None where it was not seen, last phase)}``."""
    exits = {r: f['exitcode'] for r, f in outcome.get('failures', {}).items()
             if f.get('exitcode') is not None}
    exits.update(outcome.get('exits', {}))
    by_guard = set(outcome.get('killed_by_guard', [])) | set(outcome.get('stopped', []))
    ended_unseen = set(outcome.get('ended_at', {})) | set(outcome.get('early_exit', []))
    found: dict[int, tuple[int | None, str]] = {}
    for rank, record in enumerate(records):
        if (record or {}).get('error') or (record or {}).get('finished') or rank in by_guard:
            continue
        code = exits.get(rank)
        if code is None and rank not in ended_unseen:
            continue
        found[rank] = (code, (record or {}).get('phase', 'start-up'))
    return found


def error_finding(record: dict[str, Any], who: str, sentence: str) -> Finding:
    """The finding for a rank that raised: DDP's unused parameters get their modules and fix."""
    from ._rank import DDP_STOPPED

    error, phase = record['error'], record['phase']
    if not any(marker in error for marker in DDP_STOPPED):
        return Finding(Rule.STATE, f'{who} failed in {phase}: '
                                   f'{(record.get("error_line") or sentence)[:500]}')
    unused = record.get('no_gradient') or []
    recreated = record.get('recreated') or []
    stopped = (f'DistributedDataParallel (find_unused_parameters='
               f'{record.get("find_unused_parameters")}) stopped {who} at {phase} with '
               f'"{sentence}"')
    if recreated:
        return Finding(Rule.STATE, f'{stopped}: parameters made anew in forward, in '
                                   f'{group_by_module(recreated)}; {RECREATED_FIX}')
    named = (f'{len(unused)} parameters got no gradient, in {len(group_by_module(unused))} '
             f'module(s): {group_by_module(unused)}' if unused else 'DDP named no parameter')
    return Finding(Rule.STATE, f'{stopped}: {named}; {FIX}')


def finished_all(records: list[dict[str, Any] | None]) -> bool:
    """Positive evidence: every rank logged all its iterations and the end of training."""
    return len(records) == WORLD_SIZE and all(
        rec is not None and rec.get('finished') and len(rec.get('steps', [])) >= STEPS
        and rec.get('world_size') == WORLD_SIZE for rec in records)


def progress(records: list[dict[str, Any] | None]) -> str:
    return ', '.join(f'rank {r}: {len((rec or {}).get("steps", []))}/{STEPS} iterations, '
                     f'last in {(rec or {}).get("phase", "start-up")}'
                     for r, rec in enumerate(records))


#: Free bytes below which the ranks' logs (rewritten at every phase) may not fit.
LOG_ROOM = 1 << 20


def disk_full(root: Path) -> str | None:
    """Why the ranks may have been unable to write their logs under ``root``, if its disk is
    (nearly) full; a rank that cannot log looks as if it ended without a word."""
    import shutil

    try:
        free = shutil.disk_usage(root).free
    except OSError:
        return None
    if free >= LOG_ROOM:
        return None
    return (f'the temporary folder {root.parent} has {free:,} bytes free: the ranks could not '
            'write their logs, so how they ended is unknown; free space there or point TMPDIR '
            'elsewhere')


def check(ctx: GuardContext) -> CheckResult:
    """Two ranks train the config's Runner under its DDP wrapper, to the last iteration."""
    budget = budget_of(ctx)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='epam-guard-ddp-') as folder:
        root = Path(folder)
        cfg, swaps = prepare(ctx, root)
        spec = rank_spec(ctx, cfg, root)
        preload(cfg)
        outcome = run_ranks(spec, root, budget, ctx.progress)
        if outcome.get('agent_error') and not any(read_logs(root)):
            # Not the model's doing (e.g. no free port, no fork): an error, not a finding.
            raise RuntimeError(f'torch.distributed.run could not start the ranks: '
                               f'{outcome["agent_error"][:300]}')
        records = read_logs(root)
        findings = diagnose(records, outcome, budget)
        if findings:
            full = disk_full(root)
            if full:  # the ranks could not log: the guard's environment, not the model
                raise RuntimeError(full)
        tails = {r: log_tail(root, r) for r in range(WORLD_SIZE)} if findings else {}
    first = records[0] or {}
    backend = cfg.env_cfg.dist_cfg.backend
    details: dict[str, Any] = {
        'launcher': 'torch.distributed.launcher.api.elastic_launch (c10d rendezvous on '
                    f'127.0.0.1, {start_method()})',
        'backend': backend, 'world_size': WORLD_SIZE, 'budget_s': budget, 'swapped': swaps,
        'wrapper': first.get('wrapper'),
        'find_unused_parameters': first.get('find_unused_parameters'),
        'steps': {r: (rec or {}).get('steps') for r, rec in enumerate(records)},
        'phases': {r: (rec or {}).get('phase') for r, rec in enumerate(records)},
        'wall_s': round(time.perf_counter() - start, 2), **outcome,
    }
    if findings:
        details['log_tail'] = tails
        details['errors'] = {r: (rec or {}).get('error') for r, rec in enumerate(records)}
        details['traceback'] = {r: (rec or {}).get('traceback') for r, rec in enumerate(records)}
    overrides = '; '.join(swaps['distributed'])
    return conclude('ddp', findings,
                    f'{first.get("wrapper", "DDP")} ({backend}, find_unused_parameters='
                    f'{first.get("find_unused_parameters")}) trained {STEPS} iterations on each '
                    f'of {WORLD_SIZE} ranks through the config\'s Runner (launcher=pytorch, '
                    f'{RANK_BATCH} samples per rank); their parameters agree'
                    + (f'; overrides for the CPU: {overrides}' if overrides else ''), details)
