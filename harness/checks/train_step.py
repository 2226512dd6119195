"""Check ``train_step``: one optimizer step on a fixed batch lowers its loss.

CONTRACT §6. The optimizer is the config's own ``optim_wrapper`` built by
MMEngine. The loss is measured twice under the same RNG state; between the
two, only the parameters move (buffers such as prototype memories and BN
statistics are put back), so a lower loss is the step's doing. Every loss
term must be finite and every gradient finite; parameters that got no
gradient are listed by module (DistributedDataParallel with
``find_unused_parameters=False`` stops on them).
"""
from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import torch

from .. import state
from ..batch import make_batch, preprocess
from ..context import GuardContext
from ..contract import Rule
from ..nonfinite import locate_non_finite
from ..result import CheckResult, Finding, conclude


def group_by_module(names: list[str]) -> dict[str, list[str]]:
    """``['a.b.weight', 'a.b.bias']`` -> ``{'a.b': ['weight', 'bias']}``."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        module, _, leaf = name.rpartition('.')
        groups[module or '(model)'].append(leaf)
    return dict(groups)


def _loss(ctx: GuardContext, model: Any, batch: dict[str, Any]) -> tuple[Any, dict]:
    """Total and per-term losses of ``batch`` (``model`` is an MMEngine ``BaseModel``)."""
    torch.manual_seed(ctx.settings.seed)  # same dropout masks on both measurements
    data = preprocess(model, batch, True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    return total, losses


def check(ctx: GuardContext) -> CheckResult:
    """One step of the config's optimizer lowers the loss; all gradients are finite."""
    from mmengine.optim import build_optim_wrapper

    model, findings = ctx.model, []
    model.train()
    batch = make_batch(ctx.recipe)
    saved = state.snapshot(model, parameters=False)
    before, terms = _loss(ctx, model, batch)
    bad = [key for key, value in terms.items()
           if 'loss' in key and not torch.isfinite(value).all()]
    if bad:
        data = preprocess(model, batch, True)
        where = locate_non_finite(model, data['inputs'], lambda: model(**data, mode='loss')) \
            or 'no module output was non-finite, so the loss computation itself made it'
        findings = [Finding(Rule.STATE, f'loss {key!r} is not finite before the step '
                                        f'({terms[key].detach().flatten()[0].item()}): {where}')
                    for key in bad]
        return conclude('train_step', findings, '', {'non_finite': bad})
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(ctx.cfg.optim_wrapper))
    optim_wrapper.zero_grad()
    optim_wrapper.backward(before)
    unused, non_finite = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            unused.append(name)
        elif not torch.isfinite(param.grad).all():
            non_finite.append(name)
    if non_finite:
        groups = group_by_module(non_finite)
        findings.append(Finding(Rule.STATE,
            f'{len(non_finite)} parameters got a non-finite gradient, '
            f'first in {next(iter(groups))}: {groups}'))
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    state.restore(model, saved)
    with torch.no_grad():
        after, _ = _loss(ctx, model, batch)
    state.restore(model, saved)
    if not findings and not after < before:
        findings.append(Finding(Rule.STATE,
            f'one optimizer step did not lower the loss on a fixed '
            f'batch: {before.item():.6f} -> {after.item():.6f}'))
    details = {'loss_before': before.item(), 'loss_after': after.item(),
               'optimizer': type(optim_wrapper.optimizer).__name__,
               'no_gradient': group_by_module(unused)}
    note = f'; {len(unused)} parameters got no gradient (see details)' if unused else ''
    return conclude('train_step', findings,
                    f'one {details["optimizer"]} step lowered the loss {before.item():.4f} -> '
                    f'{after.item():.4f}; gradients finite{note}', details)
