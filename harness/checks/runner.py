"""Check ``runner``: MMEngine's ``Runner`` trains, validates and checkpoints with the config.

CONTRACT §4 (validation reports the metric ``CheckpointHook(save_best=...)``
waits for) and §6 (a training step and a checkpoint that loads back). The
``Runner`` is built with ``Runner.from_cfg`` from the user's config with only
these swapped:

- data locations: synthetic data in the format of each dataloader's dataset
  (:mod:`epam_guard.fixtures.datasets`) in a temporary folder, one training
  and one validation sample (``batch_size`` as configured; the training set
  has a full batch when the loader drops the last one);
- loader workers: ``num_workers=0``, ``persistent_workers=False``;
- outputs: the work dir and every other place MMEngine writes (visualizer
  backends, hooks' ``out_dir``, loggers, evaluators' dump files) point into
  the temporary folder; backends that report to a service (W&B, MLflow, ...)
  become a ``LocalVisBackend``; ``load_from`` and ``resume`` are ignored (the
  real run's checkpoint is not read), and the verdict says so;
  ``launcher='none'`` (see :mod:`._outputs`);
- loop lengths: one epoch (one iteration for an iteration-based loop),
  validated at its end; a ``RepeatDataset`` passes over its data once
  (``times=1``), so the epoch is one pass over the synthetic samples.

Everything else runs as configured: the model (a fresh one, built by the
Runner), optimizer, parameter schedulers (MMEngine takes a shorter loop as it
is: a ``MultiStepLR`` whose milestones are never reached just keeps its
learning rate, so nothing is adapted), hooks with ``save_best``, evaluator,
log processor, visualizer. Afterwards the metric ``save_best`` names must
have been produced, a checkpoint written that loads into a fresh model with
the trained values, and nothing written outside the temporary folder: the
current directory, the config's folder and every folder the config names are
watched, and a change counts against the run when this process made it
(:func:`._outputs.watched_writes`). A run that raises is reported by its
first error and the line of user code it came from. When this torch's
``torch.load`` defaults refuse the checkpoint (``weights_only``, torch >= 2.6
with MMEngine 0.10), the result carries a warning rather than a failure:
``load_from`` and ``resume`` will fail, but the cause is the torch/MMEngine
pair, not the config or the model. MMEngine's process-wide state is put back
(:func:`epam_guard.probe.isolation.preserved_state`).
"""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from mmengine.hooks import Hook

from ..contract.errors import one_line
from ..contract.profiles import Rule
from ..model.context import GuardContext, build_model
from ..probe.isolation import cpu_math, preserved_state
from ..report.result import CheckResult, Finding, conclude
from ._launch import in_process_loaders, located, synthetic_config, unrepeated
from ._outputs import named_folders, redirect_outputs, watched_writes
from .common import closest

SHOWN = 6


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

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.reached(f'training iteration {self.train_iters + 1}')

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


def launch_config(ctx: GuardContext, root: Path) -> tuple[Any, Any, dict[str, Any]]:
    """The user's config with data, workers, outputs and loop lengths swapped.

    Returns:
        tuple: the config copy, the synthetic dataset, and what
        :func:`._outputs.redirect_outputs` changed.
    """
    train = ctx.cfg.get('train_dataloader') or {}
    num_train = int(train.get('batch_size', 1)) if train.get('drop_last') else 1
    cfg, dataset = synthetic_config(ctx.cfg, root, num_train=num_train, num_val=1,
                                    seed=ctx.settings.seed, num_classes=ctx.recipe.num_classes)
    in_process_loaders(cfg)
    outputs = redirect_outputs(cfg, root / 'outputs')
    outputs['unrepeated'] = unrepeated(cfg)
    cfg.work_dir = str(root / 'work_dir')
    cfg.launcher = 'none'
    cfg.train_cfg = short_loop(cfg.get('train_cfg'))
    return cfg, dataset, outputs


def checkpoint_hook(runner: Any) -> Any:
    from mmengine.hooks import CheckpointHook

    return next((hook for hook in runner.hooks if isinstance(hook, CheckpointHook)), None)


def metric_findings(save_best: list[str] | None, metrics: dict[str, Any] | None) -> list[Finding]:
    """``save_best`` keys that validation did not produce."""
    if not save_best:
        return []
    if metrics is None or (not metrics and 'auto' in save_best):
        return [Finding(Rule.HEAD, f'CheckpointHook(save_best={save_best}) waits for a validation '
                                   'metric, but validation never reported any (is val_dataloader, '
                                   'val_cfg and val_evaluator set?)')]
    missing = [key for key in save_best if key != 'auto' and key not in metrics]
    if not missing:
        return []
    produced = list(metrics)
    shown = ', '.join(produced[:SHOWN]) + (f', ... {len(produced) - SHOWN} more'
                                           if len(produced) > SHOWN else '')
    close = closest(missing[0], produced)
    fix = (f'set default_hooks.checkpoint.save_best to a produced key ('
           f'{"did you mean" if close else "e.g."} {close or produced[0]!r}?)' if produced
           else "make validation produce it (val_evaluator, the head's predict)")
    return [Finding(Rule.HEAD,
        f'CheckpointHook(save_best={missing[0]!r}) waits for a metric '
        f'validation never produces; it reported {shown or "nothing"}. A real '
        f'run dies with KeyError after its first validation; {fix}')]


def best_names(save_best: list[str] | None, metrics: dict[str, Any] | None) -> list[str]:
    """``save_best`` as the verdict names it: ``auto`` with the metric it resolved to
    (CheckpointHook takes the first one validation reports)."""
    first = next(iter(metrics or {}), None)
    return [f'auto = {first}' if key == 'auto' and first else key
            for key in save_best or ['(no save_best)']]


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
                f'model: {one_line(exc)}'))
            continue
        loaded = fresh.state_dict()
        differ = [key for key, value in trained.items()
                  if key not in loaded or not torch.equal(loaded[key].cpu(), value.cpu())]
        if differ:
            findings.append(Finding(Rule.STATE, f'checkpoint {path.name} loads but {len(differ)} '
                                                f'entries differ from the trained model: '
                                                f'{differ[:SHOWN]}'))
    if paths:
        notes['default_torch_load'] = default_load_note(paths[0])
    return findings, notes


def default_load_note(path: Path) -> str:
    """Whether ``torch.load``'s defaults (what MMEngine's loading uses) read the checkpoint,
    and, when they refuse it, which load fails, where, and what a training run would see."""
    try:
        torch.load(path, map_location='cpu')
    except Exception as exc:
        blocked = re.search(r'Unsupported global: GLOBAL ([\w.]+)', str(exc))
        what = f'it holds {blocked.group(1)}' if blocked else 'weights_only=True'
        return (f'checkpoint {path.name} loads only with weights_only=False: torch '
                f'{torch.__version__} refuses it by default ({type(exc).__name__}: {what}), and '
                'mmengine.runner.load_checkpoint uses that default. Training and saving work; a '
                'run that reads it stops there: load_from=..., resume=True, tools/test.py. '
                'Trusted checkpoints: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1')
    return 'torch.load with its defaults reads it'


def run_findings(observer: Observer, error: str | None,
                 save_best: list[str] | None) -> list[Finding]:
    """What the run itself showed: its first real error, or a ``save_best`` key it never made.

    A run that raised before validation reported anything is reported by that
    error (a missing metric is only its consequence). Once validation has
    reported, a ``save_best`` key it lacks explains the ``KeyError`` that
    follows better than the error does.
    """
    findings = metric_findings(save_best, observer.metrics) if (
        observer.metrics is not None or error is None) else []
    if error is not None and not findings:
        findings.append(Finding(Rule.STATE, f'the Runner failed during {observer.stage}: '
                                            f'{error}'))
    elif error is None and observer.train_iters == 0:
        findings.append(Finding(Rule.STATE, 'the Runner finished without a training iteration'))
    return findings


def checkpoint_findings(cfg: Any, root: Path, observer: Observer, save_best: list[str] | None,
                        trained: dict[str, torch.Tensor],
                        details: dict[str, Any]) -> tuple[list[Finding], list[str]]:
    """Checkpoints were written (a best one for ``save_best``) and load back; the warnings."""
    work_dir = Path(cfg.work_dir)
    outputs = [work_dir, root / 'outputs']
    checkpoints = sorted(p for folder in outputs for p in folder.rglob('*.pth'))
    details['checkpoints'] = [str(p.relative_to(work_dir if p.is_relative_to(work_dir) else root))
                              for p in checkpoints]
    details['logs'] = sorted(str(p.relative_to(root)).removeprefix('work_dir/')
                             for folder in outputs for p in folder.rglob('*')
                             if p.suffix in ('.log', '.json'))
    findings = []
    if not checkpoints:
        findings.append(Finding(Rule.STATE, f'no checkpoint was written under the work dir '
                                            f'after {observer.train_iters} iteration(s)'))
    if save_best and not any(p.name.startswith('best_') for p in checkpoints):
        findings.append(Finding(Rule.STATE,
                                f'save_best={save_best} but no best checkpoint was written'))
    loaded, notes = loads_back(cfg, checkpoints, trained)
    details.update(notes)
    warning = notes.get('default_torch_load', '')
    return findings + loaded, [warning] if 'refuses it by default' in warning else []


def write_findings(writes: Any, details: dict[str, Any]) -> tuple[list[Finding], list[str]]:
    """Stray writes of this run; a warning for unexplained changes named like its outputs."""
    details['watched'] = writes.watched
    details['changed_by_others'] = writes.elsewhere[:SHOWN * 10]
    findings = [Finding(Rule.STATE, f'the run wrote outside its temporary folder: '
                                    f'{writes.strays[:SHOWN]}'
                                    + (f' (+{len(writes.strays) - SHOWN} more)'
                                       if len(writes.strays) > SHOWN else ''))
                ] if writes.strays else []
    warnings = []
    like = writes.elsewhere_like_outputs()
    if like:
        warnings.append(f'{len(like)} path(s) named like run outputs changed in watched folders '
                        f'during the run, not through this process\'s Python file calls '
                        f'(another process, or native code such as torch.save): {like[:SHOWN]}')
    if writes.truncated:
        warnings.append('a watched folder holds more than 20000 entries and was listed in part')
    return findings, warnings


def swapped_note(outputs: dict[str, Any]) -> str:
    """``; ignored load_from, resume; W&B -> LocalVisBackend`` for the verdict (or nothing)."""
    notes = []
    if outputs['ignored']:
        notes.append(f'ignored {", ".join(outputs["ignored"])} (the real run\'s checkpoint is '
                     'not read)')
    if outputs['replaced']:
        notes.append(f'{", ".join(outputs["replaced"])} replaced by LocalVisBackend')
    return ''.join(f'; {note}' for note in notes)


def check(ctx: GuardContext) -> CheckResult:
    """A short real run: trains, validates, reports save_best's metric, checkpoints cleanly."""
    from mmengine.runner import Runner

    details: dict[str, Any] = {}
    config = Path(ctx.settings.config).resolve()
    cwd = Path.cwd().resolve()
    watched = [cwd, config.parent, *named_folders(ctx.cfg, cwd)]
    observer = Observer()
    error: str | None = None
    save_best: list[str] | None = None
    with tempfile.TemporaryDirectory(prefix='epam-guard-runner-') as folder:
        root = Path(folder)
        cfg, _, outputs = launch_config(ctx, root)
        details['swapped'] = {'train_cfg': dict(cfg.train_cfg), 'work_dir': cfg.work_dir,
                              'num_workers': 0, **outputs}
        start = time.perf_counter()
        runner = None
        with watched_writes(watched, root) as writes:
            with preserved_state() as console:
                try:
                    runner = Runner.from_cfg(cfg)
                    observer.reached('built')
                    runner.register_hook(observer)
                    hook = checkpoint_hook(runner)
                    save_best = list(hook.save_best) if hook and hook.save_best else None
                    with cpu_math(ctx.device):
                        runner.train()
                    observer.reached('done')
                except Exception as exc:  # the user's config, hooks and model: a finding
                    error = located(exc)
                model = getattr(runner, 'model', None)
                model = getattr(model, 'module', model)
                trained = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                           if model is not None else {})
                del runner, model
            details.update(seconds=round(time.perf_counter() - start, 2), save_best=save_best,
                           train_iters=observer.train_iters, stage_seconds=observer.times,
                           metrics=observer.metrics)
            findings = run_findings(observer, error, save_best)
            warnings: list[str] = []
            if error is None:
                saved, warnings = checkpoint_findings(cfg, root, observer, save_best, trained,
                                                      details)
                findings += saved
            else:
                details['error'] = error
                details['console_tail'] = console.getvalue().splitlines()[-20:]
                details.setdefault('checkpoints', [])
        strays, watch_warnings = write_findings(writes, details)
    findings += strays
    best = best_names(save_best, observer.metrics)
    load = ' with weights_only=False' if warnings else ''  # the warning says why
    return conclude('runner', findings,
                    f'Runner trained {observer.train_iters} iteration(s), validated '
                    f'({", ".join(best)} produced), wrote {len(details["checkpoints"])} '
                    f'checkpoint(s) that load back{load}, nothing outside its temporary folder'
                    f'{swapped_note(outputs)}', details, warnings=warnings + watch_warnings)
