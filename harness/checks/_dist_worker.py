"""One rank of the ``ddp`` check: ``python -m epam_guard.checks._dist_worker SPEC RANK``.

``SPEC`` is a pickle the check writes (the config, the batch recipe, the
rendezvous, where to report); each rank builds the model from the config with
the same seed, lists the parameters a plain loss backward leaves without a
gradient, wraps the model as MMEngine's ``Runner.wrap_model`` would, runs
``train_step`` on a synthetic batch twice and writes ``rank{RANK}.json``
next to the spec, also when something raised.
"""
from __future__ import annotations

import copy
import json
import os
import pickle
import sys
import time
import traceback
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

STEPS = 2


def load(spec: dict[str, Any]) -> Any:
    """The config the guard checks: the parent's own, or re-read from path and overrides."""
    from epam_guard.context import load_config
    from mmengine.utils import import_modules_from_strings

    from epam.compat import ensure_mmaction_models_importable

    for folder in reversed(spec['import_paths']):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    ensure_mmaction_models_importable()
    cfg = spec.get('cfg')
    if cfg is None:
        cfg = load_config(Path(spec['config']), spec['cfg_options'], spec['import_paths'])
    # Imports named by an override or by a config that was not parsed here
    # (the parent's pickled config) must run in this process too.
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    return cfg


def wrap(cfg: Any, model: Any, device: Any) -> Any:
    """Wrap ``model`` like ``mmengine.runner.Runner.wrap_model`` in a distributed run.

    The one difference: ``device_ids`` only on CUDA (MMEngine passes
    ``[LOCAL_RANK]`` always, which DistributedDataParallel refuses for a CPU
    module).
    """
    from mmengine.model import MMDistributedDataParallel, convert_sync_batchnorm
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == 'cuda' else None
    if cfg.get('sync_bn') is not None and device.type == 'cuda':
        model = convert_sync_batchnorm(model, cfg.sync_bn)
    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        return MMDistributedDataParallel(
            module=model, device_ids=device_ids, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cfg = copy.deepcopy(dict(wrapper_cfg))
    wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
    default_args: dict[str, Any] = {'module': model}
    if issubclass(MODEL_WRAPPERS.get(wrapper_cfg['type']), DistributedDataParallel):
        default_args['device_ids'] = device_ids
    return MODEL_WRAPPERS.build(wrapper_cfg, default_args=default_args)


def no_gradient(model: Any, batch: dict[str, Any]) -> list[str]:
    """Trainable parameters a plain loss backward leaves with ``grad is None``."""
    from epam_guard.batch import preprocess

    model.train()
    losses = model(**preprocess(model, batch, True), mode='loss')
    total, _ = model.parse_losses(losses)
    total.backward()
    unused = [name for name, param in model.named_parameters()
              if param.requires_grad and param.grad is None]
    model.zero_grad(set_to_none=True)
    return unused


def fresh(batch: dict[str, Any]) -> dict[str, Any]:
    """New containers for each step: MMAction2's preprocessors rewrite the ones they get."""
    return {'inputs': {key: list(values) for key, values in batch['inputs'].items()},
            'data_samples': [sample.clone() for sample in batch['data_samples']]}


class Report(dict):
    """What a rank reports, written to ``path`` at every phase (a killed rank leaves its last)."""

    def __init__(self, path: Path, started: float, **fields: Any) -> None:
        super().__init__(fields)
        self.path, self.started = path, started

    def save(self, phase: str | None = None) -> None:
        self['seconds'] = round(time.time() - self.started, 2)
        if phase is not None:
            self['phase'] = phase
            self.setdefault('reached', {})[phase] = self['seconds']
        partial = self.path.with_suffix('.partial')
        partial.write_text(json.dumps(self, default=str))
        os.replace(partial, self.path)


def run(spec: dict[str, Any], rank: int, report: Report) -> None:
    """Everything one rank does; ``report`` is saved at each phase."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # see epam_guard.checks._launch.cpu_math
    from epam_guard.batch import make_batch
    from epam_guard.context import build_model, seed_everything
    from mmengine.optim import build_optim_wrapper

    report.save('config')
    cfg = load(spec)
    device = torch.device('cuda', rank) if spec['backend'] == 'nccl' else torch.device('cpu')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    report.save('rendezvous')
    dist.init_process_group(spec['backend'], init_method=spec['init_method'], rank=rank,
                            world_size=spec['world_size'],
                            timeout=timedelta(seconds=spec['timeout']))
    report.save('build')
    seed_everything(spec['seed'])
    model = build_model(cfg, device)
    batch = make_batch(replace(spec['recipe'], seed=spec['recipe'].seed + rank))
    report.save('plain backward')
    report['no_gradient'] = no_gradient(model, fresh(batch))
    report.save('wrap')
    ddp = wrap(cfg, model, device)
    report['wrapper'] = type(ddp).__name__
    report['find_unused_parameters'] = getattr(ddp, 'find_unused_parameters', None)
    optim_wrapper = build_optim_wrapper(ddp, copy.deepcopy(cfg.optim_wrapper))
    for step in range(1, STEPS + 1):
        report.save(f'train_step {step}')
        log_vars = ddp.train_step(fresh(batch), optim_wrapper)
        report['losses'].append(float(torch.as_tensor(log_vars['loss']).detach()))
        report['steps'] = step
    report.save('done')
    with torch.no_grad():
        report['checksum'] = float(sum(p.double().sum() for p in model.parameters()))


def main(argv: list[str]) -> None:
    """Run one rank, always write its report, and exit with status 0."""
    spec_path, rank = Path(argv[0]), int(argv[1])
    with open(spec_path, 'rb') as f:
        spec = pickle.load(f)
    report = Report(spec_path.with_name(f'rank{rank}.json'), spec['started'], rank=rank,
                    phase='start', steps=0, losses=[], error=None, no_gradient=None)
    try:
        run(spec, rank, report)
    except BaseException as exc:  # reported to the parent, which decides
        report['error'] = f'{type(exc).__name__}: {exc}'.strip()[:8000]
        report['traceback'] = traceback.format_exc()[-3000:]
    finally:
        report.save()
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    # The report is written: skip the interpreter's teardown of torch (about a second).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == '__main__':
    main(sys.argv[1:])
