"""Check ``train_step``: one optimizer step on a fixed batch lowers its loss.

CONTRACT §6. The optimizer is the config's own ``optim_wrapper`` built by
MMEngine. The loss is measured twice under the same RNG state; between the
two, only the parameters move (buffers such as prototype memories and BN
statistics are put back), so a lower loss is the step's doing.

Also, from the same step:

- a loss computation hard-wired to CUDA on a machine without it is a §6
  finding naming the line, not an error;
- every loss term is reported before and after the step, and fails when it is
  not finite or below zero for its kind (cross-entropies, distances and
  consistency penalties, :data:`contract.LOSS_KINDS`, are never negative);
- every gradient is finite;
- no trainable ``nn.Parameter`` is created or replaced by ``forward`` (the
  optimizer and DistributedDataParallel hold the old one, so the new one never
  trains and DDP stops at step 2);
- trainable parameters left without a gradient fail when the config's DDP
  wrapper would stop on them (``find_unused_parameters`` False or absent,
  MMEngine's default), naming their modules.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import torch

from ..contract.errors import one_line
from ..contract.profiles import NON_NEGATIVE_LOSSES, Rule, loss_kind
from ..model.batch import make_batch, preprocess
from ..model.context import GuardContext
from ..model.diagnosis import cuda_message, hard_wired_cuda
from ..model.passes import value_context
from ..probe import state
from ..probe.nonfinite import locate_non_finite
from ..report.result import CheckResult, Finding
from .common import bounded, finish

#: Module names shown in a finding before ``... N more`` (all of them are in the details).
MODULES_SHOWN = 3
UNUSED_FIX = ("use them in the loss, freeze them (requires_grad=False) or set model_wrapper_cfg="
              "dict(type='MMDistributedDataParallel', find_unused_parameters=True)")


def group_by_module(names: list[str]) -> dict[str, list[str]]:
    """``['a.b.weight', 'a.b.bias']`` -> ``{'a.b': ['weight', 'bias']}``."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        module, _, leaf = name.rpartition('.')
        groups[module or '(model)'].append(leaf)
    return dict(groups)


def modules_line(names: list[str]) -> str:
    """``cls_head.fc_extra (weight, bias), ...`` for parameter names, capped."""
    groups = group_by_module(names)
    shown = [f'{module} ({", ".join(leaves)})' for module, leaves in
             list(groups.items())[:MODULES_SHOWN]]
    more = f', ... {len(groups) - MODULES_SHOWN} more' if len(groups) > MODULES_SHOWN else ''
    return ', '.join(shown) + more


def ddp_stops_on_unused(cfg: Any) -> bool:
    """Whether the config's DDP wrapper raises on parameters without a gradient.

    As MMEngine's ``Runner.wrap_model``: without ``model_wrapper_cfg`` it builds
    ``MMDistributedDataParallel(find_unused_parameters=cfg.find_unused_parameters
    or False)``; with one, a DistributedDataParallel subclass stops unless the
    config sets ``find_unused_parameters=True``.
    """
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        return not cfg.get('find_unused_parameters', False)
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    kind = wrapper.get('type', 'MMDistributedDataParallel')
    cls = MODEL_WRAPPERS.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, DistributedDataParallel)):
        return False
    return not wrapper.get('find_unused_parameters', False)


def _parameter_ids(model: Any) -> dict[str, int]:
    return {name: id(param) for name, param in model.named_parameters() if param.requires_grad}


def _renewed(before: dict[str, int], after: dict[str, int]) -> tuple[list[str], list[str]]:
    """(replaced, created) trainable parameter names between two :func:`_parameter_ids`."""
    replaced = [name for name, ident in after.items() if name in before and before[name] != ident]
    created = [name for name in after if name not in before]
    return replaced, created


def _value(value: Any) -> float:
    """A loss entry as one float, as ``parse_losses`` reduces it (mean, or sum of means)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean())
    if isinstance(value, (list, tuple)):
        return float(sum(_value(v) for v in value))
    return float(value)


def _loss(ctx: GuardContext, model: Any, batch: dict[str, Any]) -> tuple[Any, dict]:
    """Total and per-term losses of ``batch`` (``model`` is an MMEngine ``BaseModel``)."""
    torch.manual_seed(ctx.settings.seed)  # same dropout masks on both measurements
    data = preprocess(model, batch, True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    return total, losses


def _term_findings(terms: dict[str, dict[str, Any]]) -> list[Finding]:
    """Terms that are NaN/Inf, or below zero for a kind that cannot be (once per term)."""
    findings = []
    for key, term in terms.items():
        for when in ('before', 'after'):
            value = term.get(when)
            if value is None:
                continue
            if value != value or value in (float('inf'), float('-inf')):
                findings.append(Finding(Rule.STATE,
                    f'loss term {key!r} is {value} {when} the step'))
            elif value < 0 and term['kind'] is not None and NON_NEGATIVE_LOSSES:
                findings.append(Finding(Rule.STATE,
                    f'loss term {key!r} is {value:.6g} {when} the step: a '
                    f'{term["kind"].replace("_", "-")} loss (a cross-entropy, distance or '
                    'consistency penalty) is never below zero; check its sign and weight'))
            else:
                continue
            break
    return findings


def check(ctx: GuardContext) -> CheckResult:
    """One step of the config's optimizer lowers the loss; terms and gradients are sound."""
    from mmengine.optim import build_optim_wrapper

    ctx = value_context(ctx)  # a step lowers the loss at any crop; clip lengths are kept
    model, findings = ctx.model, []
    model.train()
    batch = make_batch(ctx.recipe)
    saved = state.copy_tensors(model, parameters=False)
    ids = _parameter_ids(model)
    try:
        before, losses = _loss(ctx, model, batch)
    except Exception as exc:
        if not hard_wired_cuda(exc):
            raise  # the engine reports it as this check's error
        return finish('train_step', [Finding(Rule.STATE, cuda_message(exc, 'loss mode'))], '',
                      {'error': one_line(exc)})
    terms = {key: {'kind': loss_kind(key), 'before': _value(value)}
             for key, value in losses.items() if 'loss' in key}
    bad = [key for key, value in losses.items()
           if 'loss' in key and not torch.isfinite(torch.as_tensor(_value(value)))]
    if bad:
        data = preprocess(model, batch, True)
        where = locate_non_finite(model, data['inputs'], lambda: model(**data, mode='loss')) \
            or 'no module output was non-finite, so the loss computation itself made it'
        findings = [Finding(Rule.STATE, f'loss {key!r} is not finite before the step '
                                        f'({terms[key]["before"]}): {where}') for key in bad]
        return finish('train_step', findings, '', {'non_finite': bad, 'terms': terms})
    replaced, created = _renewed(ids, _parameter_ids(model))
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
        findings.append(Finding(Rule.STATE,
            f'{len(non_finite)} parameters got a non-finite gradient, in '
            f'{modules_line(non_finite)}'))
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    state.restore(model, saved)
    ids_stepped = _parameter_ids(model)
    with torch.no_grad():
        after, losses_after = _loss(ctx, model, batch)
    state.restore(model, saved)
    again, _ = _renewed(ids_stepped, _parameter_ids(model))
    for key, value in losses_after.items():
        if key in terms:
            terms[key]['after'] = _value(value)
    findings += _term_findings(terms)
    for name in replaced + created:
        if name in again:
            how = ('is a new nn.Parameter after each forward: it is re-created in forward(), '
                   'so it never trains and DDP stops at step 2')
        else:
            how = ('is a new nn.Parameter after the first forward: it is made in forward(), '
                   'after the optimizer and DDP took the parameters, so it never trains and '
                   'DDP stops at step 2')
        findings.append(Finding(Rule.STATE,
            f'{name} {how}; create it once in __init__ and update .data in place, or '
            'register it as a buffer'))
    warnings = []
    if unused:
        line = f'{len(unused)} trainable parameters got no gradient, in {modules_line(unused)}'
        if ddp_stops_on_unused(ctx.cfg):
            findings.append(Finding(Rule.STATE,
                f'{line}: DDP (find_unused_parameters=False, MMEngine\'s default) stops at '
                f'step 2; {UNUSED_FIX}'))
        else:
            warnings.append(f'{line}; find_unused_parameters=True tolerates them at a speed cost')
    if not findings and not after < before:
        findings.append(Finding(Rule.STATE,
            f'one optimizer step did not lower the loss on a fixed '
            f'batch: {before.item():.6f} -> {after.item():.6f}'))
    details = {'loss_before': before.item(), 'loss_after': after.item(),
               'optimizer': type(optim_wrapper.optimizer).__name__,
               'terms': terms, 'no_gradient': group_by_module(unused),
               'renewed_in_forward': replaced + created}
    shown = bounded(', '.join(f'{key} {term["before"]:.3g}->{term.get("after", float("nan")):.3g}'
                              for key, term in terms.items()), 160)
    return finish('train_step', findings,
                  f'one {details["optimizer"]} step lowered the loss {before.item():.4f} -> '
                  f'{after.item():.4f} ({len(terms)} terms: {shown}); gradients finite',
                  details, warnings)
