"""One rank of a distributed training run: the config's MMEngine ``Runner`` under DDP.

Shared by the ``ddp`` check (whose ranks ``torch.distributed.run``'s agent
starts) and the launcher mode (``--launcher pytorch|slurm``, where the
user's ``torchrun``/``srun`` started this process). Each rank builds the
config's ``Runner`` with ``launcher='pytorch'`` or ``'slurm'``, as
``tools/train.py`` does, and trains a few iterations. A :class:`StepLog`
hook records each rank's progress: the phase it is in, every finished
iteration with its loss and time, the parameters it trained. Only that log
is evidence that a rank finished its steps; an exit status is not.

On a CPU-only machine two things differ from a GPU rank, because MMEngine
assumes CUDA there: the process group is created here (with the config's
``dist_cfg`` and ``gloo``), since ``mmengine.dist.init_dist`` calls
``torch.cuda.set_device``; and the DDP wrapper gets ``device_ids=None``,
since ``Runner.wrap_model`` passes ``[LOCAL_RANK]``, which DDP refuses for
a CPU module. :func:`distribute` says which overrides it made.
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
import time
from typing import Any, Callable

from mmengine.hooks import Hook

from ..probe.lifeline import die_with_parent

#: Training iterations each rank runs: DDP finds a parameter without gradient at the second.
STEPS = 2
#: What DDP says when a parameter took no part in the previous iteration's loss.
DDP_STOPPED = ('Expected to have finished reduction', 'did not receive grad')


def cuda_device(local_rank: int) -> Any:
    """``cuda:LOCAL_RANK`` when this rank has a GPU, else ``cpu``."""
    import torch

    if torch.cuda.is_available() and 0 <= local_rank < torch.cuda.device_count():
        return torch.device('cuda', local_rank)
    return torch.device('cpu')


def backend_for(cfg: Any, device: Any) -> str:
    """The config's ``env_cfg.dist_cfg.backend`` on CUDA; ``gloo`` on the CPU."""
    wanted = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('backend', 'nccl')
    return str(wanted) if device.type == 'cuda' else 'gloo'


def loop_of(train_cfg: Any, steps: int) -> dict[str, Any]:
    """The configured loop type, ``steps`` iterations (one epoch), validated at its end."""
    loop = dict(train_cfg or {})
    kind = loop.get('type')
    by_iter = (kind is not None and 'Iter' in str(kind)) or 'max_iters' in loop or (
        kind is None and loop.get('by_epoch') is False)
    if by_iter:
        return dict(type=kind or 'IterBasedTrainLoop', max_iters=steps, val_begin=steps,
                    val_interval=steps)
    return dict(type=kind or 'EpochBasedTrainLoop', max_epochs=1, val_begin=1, val_interval=1)


def distribute(cfg: Any, launcher: str, device: Any, timeout: float) -> list[str]:
    """Make ``cfg`` a distributed run on ``device``; returns the overrides beyond the launcher.

    ``launcher`` and ``dist_cfg.timeout`` are set (the latter bounds every
    collective, so a rank waiting for a dead one gives up); on the CPU the
    backend becomes ``gloo`` and the DDP wrapper gets ``device_ids=None``.
    """
    notes = []
    cfg.launcher = launcher
    env_cfg = dict(cfg.get('env_cfg') or {})
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    backend = backend_for(cfg, device)
    if dist_cfg.get('backend', 'nccl') != backend:
        notes.append(f"env_cfg.dist_cfg.backend={backend!r} (the config's "
                     f"{dist_cfg.get('backend', 'nccl')!r} needs GPUs)")
    dist_cfg.update(backend=backend, timeout=max(1, int(timeout)))
    env_cfg['dist_cfg'] = dist_cfg
    cfg.env_cfg = env_cfg
    if device.type != 'cuda':
        wrapper = cfg.get('model_wrapper_cfg')
        if wrapper is None:
            # What Runner.wrap_model builds without a model_wrapper_cfg, minus the device ids.
            wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                           find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper = dict(wrapper)
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
        notes.append('model_wrapper_cfg.device_ids=None (DDP takes no device ids for a CPU '
                     'module)')
    return notes


def init_process_group(cfg: Any, launcher: str, device: Any) -> None:
    """Join the run's process group the way MMEngine's ``init_dist`` would.

    On CUDA this is ``init_dist`` itself (the Runner would call it too). On
    the CPU it is ``torch.distributed.init_process_group`` with the same
    environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``;
    for Slurm derived from ``SLURM_*`` as ``init_dist('slurm')`` does),
    because ``init_dist`` calls ``torch.cuda.set_device``.
    """
    from datetime import timedelta

    import torch.distributed as dist

    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    if device.type == 'cuda':
        from mmengine.dist import init_dist

        init_dist(launcher, **dist_cfg)
        return
    if launcher == 'slurm':
        slurm_environment()
    timeout = dist_cfg.pop('timeout', None)
    backend = dist_cfg.pop('backend', 'gloo')
    if timeout is not None:
        dist_cfg['timeout'] = timedelta(seconds=timeout)
    dist.init_process_group(backend=backend, **dist_cfg)


def slurm_environment() -> None:
    """``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*`` from Slurm's, as MMEngine does."""
    import subprocess

    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')


def unused_in(error: str) -> list[str]:
    """The parameter names DDP lists (``TORCH_DISTRIBUTED_DEBUG=INFO``) in its error."""
    match = re.search(r'Parameters which did not receive grad for rank \d+: (.*)', error)
    return [name.strip() for name in match.group(1).split(',')] if match else []


class StepLog(Hook):
    """Records how far this rank got; ``sink`` sees the record after every change.

    ``steps`` lists each finished training iteration (``after_train_iter``,
    i.e. after backward, the gradient all-reduce and the optimizer step) with
    its loss and seconds. ``recreated`` names parameters whose object changed
    between iterations (a new ``nn.Parameter`` made in ``forward``).
    """

    priority = 'LOWEST'  # after the optimizer and logger hooks have run for the iteration

    def __init__(self, rank: int, sink: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.sink = sink or (lambda record: None)
        self.started = time.perf_counter()
        self.record: dict[str, Any] = {'rank': rank, 'pid': os.getpid(), 'phase': 'start',
                                       'steps': [], 'error': None, 'finished': False}
        self._ids: dict[str, int] | None = None
        self._iter_start = 0.0

    def phase(self, name: str) -> None:
        self.record['phase'] = name
        self.record['at'] = time.time()  # wall clock: the ranks' records are compared by it
        self.record.setdefault('reached', {})[name] = round(time.perf_counter() - self.started,
                                                            2)
        self.sink(self.record)

    @staticmethod
    def module(runner: Any) -> Any:
        model = runner.model
        return getattr(model, 'module', model)

    def ids(self, runner: Any) -> dict[str, int]:
        return {name: id(param) for name, param in self.module(runner).named_parameters()}

    def before_train(self, runner: Any) -> None:
        model = runner.model
        self.record['wrapper'] = type(model).__name__
        self.record['find_unused_parameters'] = getattr(model, 'find_unused_parameters', None)
        self.record['world_size'] = runner.world_size
        self._ids = self.ids(runner)
        self.phase('training')

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._iter_start = time.perf_counter()
        self.phase(f'train iteration {len(self.record["steps"]) + 1}')

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        loss: Any = (outputs or {}).get('loss')
        if hasattr(loss, 'detach'):
            loss = loss.detach()
        self.record['steps'].append({
            'loss': float(loss) if loss is not None else None,
            'seconds': round(time.perf_counter() - self._iter_start, 3),
            'samples': len((data_batch or {}).get('data_samples') or []),
        })
        self.recreated(runner)
        self.phase(f'after train iteration {len(self.record["steps"])}')

    def recreated(self, runner: Any) -> list[str]:
        """Parameter names whose object is not the one DDP was given."""
        if self._ids is None:
            return []
        now = self.ids(runner)
        changed = sorted(name for name, ident in now.items() if self._ids.get(name) != ident)
        if changed:
            self.record['recreated'] = changed
        return changed

    def before_val(self, runner: Any) -> None:
        self.phase('validation')

    def after_train(self, runner: Any) -> None:
        import torch

        with torch.no_grad():
            total = sum(float(p.detach().double().sum()) for p in self.module(runner).parameters())
        self.record['checksum'] = total
        self.phase('after training')

    def fail(self, exc: BaseException, runner: Any | None) -> None:
        """Record ``exc`` (and, for DDP's complaint, the parameters it names)."""
        import traceback

        from ..contract.errors import one_line

        text = f'{type(exc).__name__}: {exc}'.strip()
        self.record['failed_at'] = time.time()  # which rank failed first is read from this
        self.record['error'] = text[:8000]
        self.record['error_line'] = one_line(exc)
        self.record['traceback'] = traceback.format_exc()[-3000:]
        if any(marker in text for marker in DDP_STOPPED):
            self.record['no_gradient'] = unused_in(text)
        if runner is not None and getattr(runner, 'model', None) is not None:
            # The model is whatever the failure left; the error says enough if this fails.
            with contextlib.suppress(Exception):
                self.recreated(runner)
        self.sink(self.record)

    def finish(self) -> None:
        self.record['finished'] = True
        self.phase('done')


def build_and_train(cfg: Any, log: StepLog) -> Any:
    """``Runner.from_cfg(cfg)``, the step log registered, ``train()``; returns the runner."""
    from mmengine.runner import Runner

    runner = None
    try:
        log.phase('build')
        runner = Runner.from_cfg(copy.deepcopy(cfg))
        runner.register_hook(log)
        runner.train()
    except BaseException as exc:
        log.fail(exc, runner)
        raise
    return runner


def _write(path: Any) -> Callable[[dict[str, Any]], None]:
    """A sink that replaces the JSON at ``path`` atomically (a killed rank leaves its last)."""
    import json
    from pathlib import Path

    target = Path(path)

    def sink(record: dict[str, Any]) -> None:
        partial = target.with_suffix('.partial')
        partial.write_text(json.dumps(record, default=str))
        os.replace(partial, target)

    return sink


def prepare_process(import_paths: list[str], threads: int | None = 1) -> None:
    """Import paths first, MMAction2 importable, one intra-op thread with denormals flushed.

    One thread per rank: the ranks share the machine's cores. Denormals are
    flushed for the reason :func:`epam_guard.probe.isolation.cpu_math` gives.
    """
    import torch

    from ..model.context import make_mmaction_importable, use_import_paths

    use_import_paths(import_paths)  # first, and a stale mmaction is refused here too
    make_mmaction_importable()
    if threads is not None:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


def format_config_once() -> None:
    """Let MMEngine format each distinct config once per process.

    ``Config.pretty_text`` runs yapf over the whole config, about a second on
    a laptop CPU, and a short run asks for it seven times (the log, the dumped
    config, the visualizer, every checkpoint's meta). The text depends only
    on the config's contents, so this rank (a process of its own) keeps it.
    """
    from mmengine.config import Config

    original = Config.__dict__['pretty_text']
    if getattr(original.fget, 'formats_once', False):
        return
    texts: dict[str, str] = {}

    def pretty_text(self: Any) -> str:
        key = repr((self._cfg_dict.to_dict(), getattr(self, '_format_python_code', None)))
        if key not in texts:
            texts[key] = original.fget(self)
        return texts[key]

    pretty_text.formats_once = True  # type: ignore[attr-defined]
    Config.pretty_text = property(pretty_text, doc=original.__doc__)


def name_unused_parameters() -> None:
    """Have DDP name (not number) the parameters without gradient in its error.

    ``TORCH_DISTRIBUTED_DEBUG=INFO``, unless the user chose a level; torch
    reads it when ``torch.distributed`` is imported, so it is read again here.
    """
    import torch.distributed as dist

    if 'TORCH_DISTRIBUTED_DEBUG' not in os.environ:
        os.environ['TORCH_DISTRIBUTED_DEBUG'] = 'INFO'
        dist.set_debug_level_from_env()


def release_inherited_locks() -> None:
    """MMEngine's module lock made anew in this forked rank.

    ``mmengine.utils.manager`` guards every ``get_instance`` (MessageHub,
    Visualizer, logger) with one module-level lock that a Runner build
    failing inside ``get_instance`` never releases. A rank forked from that
    process inherits it held by a thread that does not exist here, and would
    wait for it forever in its own build. Only this rank's thread runs here,
    so no lock of the parent's is held by anyone who will release it.
    """
    import threading

    from mmengine.utils import manager

    if getattr(manager, '_lock', None) is not None:
        manager._lock = threading.RLock()


def collect_in_memory() -> None:
    """Evaluators collect the ranks' results through the process group, not a folder.

    MMEngine's ``collect_results_cpu`` without a ``collect_dir`` writes into
    ``.dist_test/`` in the working directory: the user's folder, which may
    be read-only. Its ``all_gather_object`` path (the GPU one) needs no
    folder and works on gloo too; a metric's own ``collect_dir`` is kept.
    """
    from mmengine.dist import dist

    original = dist.collect_results_cpu
    if getattr(original, 'in_memory', False):
        return

    def collect_results_cpu(result_part: list, size: int, tmpdir: str | None = None) -> Any:
        if tmpdir is None:
            return dist.collect_results_gpu(result_part, size)
        return original(result_part, size, tmpdir)

    collect_results_cpu.in_memory = True  # type: ignore[attr-defined]
    dist.collect_results_cpu = collect_results_cpu


def import_custom(cfg: Any) -> None:
    """Run the config's ``custom_imports`` here (``Config.fromfile`` ran them in the parent)."""
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings

        import_modules_from_strings(**cfg.custom_imports)


def check_rank(spec: dict[str, Any]) -> None:
    """One rank of the ``ddp`` check (the elastic agent's entry point; RANK etc. in the env).

    ``spec`` (see ``epam_guard.checks.ddp.rank_spec``) comes from the parent
    through ``fork``. Joins the process group, trains through the config's
    Runner, and logs to ``rank{RANK}.json`` in the spec's folder at every
    phase. An exception is logged, then raised again so that the agent stops
    the other rank at once.
    """
    from pathlib import Path

    die_with_parent(spec['parent'])  # first act: the check's process killed, this rank goes
    release_inherited_locks()
    rank, local_rank = int(os.environ['RANK']), int(os.environ['LOCAL_RANK'])
    if not spec['cuda']:
        # Ranks on the CPU (gloo): MMEngine's Runner puts the model on CUDA whenever CUDA is
        # visible; hiding it (before any CUDA call here) is MMEngine's own way to train on CPU.
        os.environ['CUDA_VISIBLE_DEVICES'] = ''

    # Before the process group exists: DDP then names the parameters without gradient,
    # and gloo talks over the loopback interface only.
    os.environ.setdefault('GLOO_SOCKET_IFNAME', 'lo')
    log = StepLog(rank, _write(Path(spec['folder']) / f'rank{rank}.json'))
    log.phase('imports')
    import torch.distributed as dist

    name_unused_parameters()

    try:
        prepare_process(spec['import_paths'])
        format_config_once()
        collect_in_memory()
        cfg = spec['cfg']
        import_custom(cfg)
        device = cuda_device(local_rank) if spec['cuda'] else cuda_device(-1)
        log.phase('rendezvous')
        init_process_group(cfg, 'pytorch', device)
        build_and_train(cfg, log)
        log.finish()
    except BaseException as exc:
        if log.record['error'] is None:
            log.fail(exc, None)
        raise
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
