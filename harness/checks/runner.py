"""Check ``runner``: MMEngine's ``Runner`` trains, validates and checkpoints with the config.

CONTRACT §4 (validation reports the metric ``CheckpointHook(save_best=...)``
waits for) and §6 (a training step and a checkpoint that loads back). The
``Runner`` is built with ``Runner.from_cfg`` from the user's config with only
these swapped:

- data locations: a synthetic NTU-60 set in a temporary folder, one training
  and one validation sample (``batch_size`` as configured; the training set
  has a full batch when the loader drops the last one);
- loader workers: ``num_workers=0``, ``persistent_workers=False``;
- work dir: a temporary folder; hook ``out_dir`` entries, were any set,
  are pointed into it; ``launcher='none'``;
- loop lengths: one epoch (one iteration for an iteration-based loop),
  validated at its end.

Everything else runs as configured: the model (a fresh one, built by the
Runner), optimizer, parameter schedulers (MMEngine takes a shorter loop as it
is: a ``MultiStepLR`` whose milestones are never reached just keeps its
learning rate, so nothing is adapted), hooks with ``save_best``, evaluator,
log processor, visualizer. Afterwards the metric ``save_best`` names must
have been produced, a checkpoint written that loads into a fresh model with
the trained values, and nothing written outside the work dir (the config's
folder and the current directory are listed before and after). When this
torch's ``torch.load`` defaults refuse the checkpoint (``weights_only``,
torch >= 2.6 with MMEngine 0.10), the verdict carries a warning rather than
a failure: ``load_from`` and ``resume`` will fail, but the cause is the
torch/MMEngine pair, not the config or the model. MMEngine's
process-wide state (loggers, message hubs, visualizers, default scope,
random generators, multiprocessing start method) is put back.
"""
from __future__ import annotations

import contextlib
import difflib
import io
import multiprocessing
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook

from ..context import GuardContext, build_model
from ..contract import Rule
from ..result import CheckResult, Finding, conclude
from ._launch import LOADERS, cpu_math, error_line, synthetic_config

SHOWN = 6
#: Paths listed at most per check, so a huge current directory stays cheap.
MAX_LISTED = 20_000
#: Folders never listed for stray writes (caches other tools keep there).
IGNORED = {'__pycache__', '.git', '.pytest_cache', '.mypy_cache', '.ruff_cache', '.tox'}


class Observer(Hook):
    """A hook that records how far the run got and what validation reported."""

    priority = 'HIGHEST'  # sees the metrics before CheckpointHook reads them

    def __init__(self) -> None:
        self.stage = 'build'
        self.train_iters = 0
        self.metrics: dict[str, Any] | None = None
        self.started = time.perf_counter()
        self.times: dict[str, float] = {}

    def reached(self, stage: str) -> None:
        self.stage = stage
        self.times[stage] = round(time.perf_counter() - self.started, 2)

    def before_train(self, runner: Any) -> None:
        self.reached('training')

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        self.train_iters += 1
        self.reached('after the training iteration')

    def before_val(self, runner: Any) -> None:
        self.reached('validation')

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        self.metrics = dict(metrics or {})
        self.reached('after validation (CheckpointHook, LoggerHook)')

    def after_train(self, runner: Any) -> None:
        self.reached('after training')


def short_loop(train_cfg: Any) -> dict[str, Any]:
    """The configured loop type, one epoch (or one iteration) long, validated at the end."""
    loop = dict(train_cfg or {})
    kind = loop.get('type')
    by_iter = (kind is not None and 'Iter' in str(kind)) or 'max_iters' in loop or (
        kind is None and loop.get('by_epoch') is False)
    if by_iter:
        return dict(type=kind or 'IterBasedTrainLoop', max_iters=1, val_begin=1, val_interval=1)
    return dict(type=kind or 'EpochBasedTrainLoop', max_epochs=1, val_begin=1, val_interval=1)


def redirect_out_dirs(cfg: Any, work_dir: str) -> list[str]:
    """Point any hook's ``out_dir`` into the work dir; the names of the hooks changed."""
    changed = []
    hooks = list((cfg.get('default_hooks') or {}).items())
    hooks += [(hook.get('type', str(i)), hook) for i, hook in enumerate(cfg.get('custom_hooks')
                                                                        or [])]
    for name, hook in hooks:
        if isinstance(hook, dict) and hook.get('out_dir'):
            hook['out_dir'] = work_dir
            changed.append(name)
    return changed


def launch_config(ctx: GuardContext, root: Path) -> tuple[Any, Any, list[str]]:
    """The user's config with data, workers, work dir and loop lengths swapped."""
    train = ctx.cfg.get('train_dataloader') or {}
    num_train = int(train.get('batch_size', 1)) if train.get('drop_last') else 1
    cfg, dataset = synthetic_config(ctx.cfg, root, num_train=num_train, num_val=1,
                                    seed=ctx.settings.seed)
    for loader in LOADERS.values():
        if cfg.get(loader):
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False
    cfg.work_dir = str(root / 'work_dir')
    cfg.launcher = 'none'
    cfg.train_cfg = short_loop(cfg.get('train_cfg'))
    return cfg, dataset, redirect_out_dirs(cfg, cfg.work_dir)


def listing(folders: list[Path], depth: int = 2) -> dict[str, float]:
    """Paths (to ``depth`` levels) under ``folders`` -> mtime, for spotting stray writes."""
    seen: dict[str, float] = {}
    for top in folders:
        frontier = [(top, 0)]
        while frontier and len(seen) < MAX_LISTED:
            folder, level = frontier.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.name in IGNORED:
                    continue
                with contextlib.suppress(OSError):
                    seen[entry.path] = entry.stat(follow_symlinks=False).st_mtime
                if level + 1 < depth and entry.is_dir(follow_symlinks=False):
                    frontier.append((Path(entry.path), level + 1))
    return seen


def stray_writes(before: dict[str, float], after: dict[str, float], config: Path) -> list[str]:
    """New or removed paths, and the config file itself if it changed."""
    changes = sorted(set(after) - set(before)) + [f'{p} (removed)'
                                                   for p in sorted(set(before) - set(after))]
    key = str(config)
    if key in before and key in after and before[key] != after[key]:
        changes.append(f'{key} (modified)')
    return changes


def _manager_classes() -> list[type]:
    from mmengine.utils import ManagerMixin

    classes, frontier = [], [ManagerMixin]
    while frontier:
        cls = frontier.pop()
        classes.append(cls)
        frontier.extend(cls.__subclasses__())
    return classes


@contextlib.contextmanager
def preserved_state() -> Iterator[io.StringIO]:
    """Put back what building and running a Runner changes process-wide; yields its console.

    MMEngine registers the run's logger, message hub, visualizer and default
    scope as the "current" instances, seeds Python, NumPy and torch, sets the
    multiprocessing start method, cv2's threads and cudnn flags, and logs to
    the console. The console output is captured (the log file stays in the
    work dir); the rest is restored and the run's logger files closed.
    """
    cv2: Any
    try:
        import cv2
    except ImportError:  # MMAction2 needs OpenCV; without it there is nothing to put back
        cv2 = None
    saved_dicts = {cls: dict(cls.__dict__['_instance_dict'])
                   for cls in _manager_classes() if '_instance_dict' in cls.__dict__}
    rng = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    start_method = multiprocessing.get_start_method(allow_none=True)
    cv2_threads = cv2.getNumThreads() if cv2 is not None else None
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    console = io.StringIO()
    try:
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            yield console
    finally:
        from mmengine.logging import MMLogger

        for cls in _manager_classes():
            instances = cls.__dict__.get('_instance_dict')
            if instances is None:
                continue
            before = saved_dicts.get(cls, {})
            for name, instance in list(instances.items()):
                if name in before:
                    continue
                if isinstance(instance, MMLogger):
                    for handler in list(instance.handlers):
                        handler.close()
                        instance.removeHandler(handler)
            instances.clear()
            instances.update(before)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.random.set_rng_state(rng[2])
        if multiprocessing.get_start_method(allow_none=True) != start_method:
            multiprocessing.set_start_method(start_method, force=True)
        if cv2 is not None:
            cv2.setNumThreads(cv2_threads)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


def checkpoint_hook(runner: Any) -> Any:
    from mmengine.hooks import CheckpointHook

    return next((hook for hook in runner.hooks if isinstance(hook, CheckpointHook)), None)


def metric_findings(save_best: list[str] | None, metrics: dict[str, Any] | None) -> list[Finding]:
    """``save_best`` keys that validation did not produce."""
    if not save_best:
        return []
    if metrics is None:
        return [Finding(Rule.HEAD, f'CheckpointHook(save_best={save_best}) waits for a validation '
                                   'metric, but validation never reported any (is val_dataloader, '
                                   'val_cfg and val_evaluator set?)')]
    missing = [key for key in save_best if key != 'auto' and key not in metrics]
    if not missing:
        return []
    produced = list(metrics)
    shown = ', '.join(produced[:SHOWN]) + (f', ... {len(produced) - SHOWN} more'
                                           if len(produced) > SHOWN else '')
    close = difflib.get_close_matches(missing[0], produced, n=1)
    fix = (f'set default_hooks.checkpoint.save_best to a produced key ('
           f'{"did you mean" if close else "e.g."} {(close or produced)[0]!r}?)' if produced
           else "make validation produce it (val_evaluator, the head's predict)")
    return [Finding(Rule.HEAD,
        f'CheckpointHook(save_best={missing[0]!r}) waits for a metric '
        f'validation never produces; it reported {shown or "nothing"}. A real '
        f'run dies with KeyError after its first validation; {fix}')]


def loads_back(cfg: Any, paths: list[Path], trained: dict[str, torch.Tensor]
               ) -> tuple[list[Finding], dict[str, Any]]:
    """Each checkpoint loads (strictly) into a fresh model and holds the trained values.

    Read with ``weights_only=False``: MMEngine's checkpoints carry its message
    hub (``HistoryBuffer``, NumPy arrays), which ``torch.load``'s default
    refuses since torch 2.6. Whether that default still reads them is
    reported too, since ``load_from``, ``resume`` and ``load_checkpoint`` use it.
    """
    findings, notes = [], {}
    fresh = build_model(cfg, torch.device('cpu'))
    for path in paths:
        try:
            state = torch.load(path, map_location='cpu', weights_only=False)
            fresh.load_state_dict(state['state_dict'], strict=True)
        except Exception as exc:
            findings.append(Finding(Rule.STATE,
                f'checkpoint {path.name} does not load into a fresh '
                f'model: {error_line(exc)}'))
            continue
        loaded = fresh.state_dict()
        differ = [key for key, value in trained.items()
                  if key not in loaded or not torch.equal(loaded[key].cpu(), value.cpu())]
        if differ:
            findings.append(Finding(Rule.STATE, f'checkpoint {path.name} loads but {len(differ)} '
                                                f'entries differ from the trained model: '
                                                f'{differ[:SHOWN]}'))
    if paths:
        try:
            torch.load(paths[0], map_location='cpu')
            notes['default_torch_load'] = 'torch.load with its defaults reads it'
        except Exception as exc:
            notes['default_torch_load'] = (
                f'torch {torch.__version__} refuses it by default (weights_only, '
                f'{type(exc).__name__}), so load_from, resume and mmengine\'s load_checkpoint '
                'fail unless TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (trusted checkpoints only)')
    return findings, notes


def check(ctx: GuardContext) -> CheckResult:
    """A short real run: trains, validates, reports save_best's metric, checkpoints cleanly."""
    from mmengine.runner import Runner

    findings: list[Finding] = []
    details: dict[str, Any] = {}
    config = Path(ctx.settings.config).resolve()
    watched = list(dict.fromkeys([config.parent, Path.cwd().resolve()]))
    observer = Observer()
    with tempfile.TemporaryDirectory(prefix='epam-guard-runner-') as folder:
        root = Path(folder)
        cfg, _, redirected = launch_config(ctx, root)
        details['swapped'] = {'train_cfg': dict(cfg.train_cfg), 'work_dir': cfg.work_dir,
                              'num_workers': 0, 'out_dir_redirected': redirected}
        before = listing(watched)
        start = time.perf_counter()
        runner = None
        with preserved_state() as console:
            try:
                runner = Runner.from_cfg(cfg)
                observer.reached('built')
                runner.register_hook(observer)
                hook = checkpoint_hook(runner)
                save_best = list(hook.save_best) if hook and hook.save_best else None
                details['save_best'] = save_best
                with cpu_math(ctx.device):
                    runner.train()
                observer.reached('done')
            except Exception as exc:  # the user's config and hooks: any error is a finding
                details['error'] = error_line(exc)
            model = getattr(runner, 'model', None)
            model = getattr(model, 'module', model)
            trained = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                       if model is not None else {})
            del runner, model
        details['seconds'] = round(time.perf_counter() - start, 2)
        details['train_iters'] = observer.train_iters
        details['stage_seconds'] = observer.times
        details['metrics'] = observer.metrics
        findings += metric_findings(details.get('save_best'), observer.metrics)
        if 'error' in details and not findings:
            findings.append(Finding(Rule.STATE, f'the Runner failed during {observer.stage}: '
                                                f'{details["error"]}'))
        if 'error' in details:
            details['console_tail'] = console.getvalue().splitlines()[-20:]
        elif observer.train_iters == 0:
            findings.append(Finding(Rule.STATE,
                'the Runner finished without a training iteration'))
        work_dir = Path(cfg.work_dir)
        checkpoints = sorted(work_dir.rglob('*.pth'))
        details['checkpoints'] = [str(p.relative_to(work_dir)) for p in checkpoints]
        if 'error' not in details:
            if not checkpoints:
                findings.append(Finding(Rule.STATE,
                    f'no checkpoint was written under the work dir '
                    f'after {observer.train_iters} iteration(s)'))
            if details.get('save_best') and not any(p.name.startswith('best_')
                                                    for p in checkpoints):
                findings.append(Finding(Rule.STATE,
                    f'save_best={details["save_best"]} but no best '
                    'checkpoint was written'))
            loaded, notes = loads_back(cfg, checkpoints, trained)
            findings += loaded
            details.update(notes)
        details['logs'] = sorted(str(p.relative_to(work_dir)) for p in work_dir.rglob('*')
                                 if p.suffix in ('.log', '.json'))
        strays = [p for p in stray_writes(before, listing(watched), config)
                  if not p.startswith(folder)]
    if strays:
        findings.append(Finding(Rule.STATE,
            f'the run wrote outside its work dir: {strays[:SHOWN]}'))
    warning = details.get('default_torch_load', '')
    note = f'; warning: {warning}' if 'refuses' in warning else ''
    best = details.get('save_best') or ['(no save_best)']
    return conclude('runner', findings,
                    f'Runner trained {observer.train_iters} iteration(s), validated '
                    f'({", ".join(best)} produced), wrote {len(details["checkpoints"])} '
                    f'checkpoint(s) that load back, nothing outside its work dir{note}', details)
