"""Check ``labels``: the targets every loss receives mean what the labels say.

CONTRACT §5, read where the losses receive their targets (the head's loss
modules, recorded by forward pre-hooks): every integer target equals the fine
labels or ``hierarchy(fine)`` from the config's one hierarchy; permuting the
batch permutes the targets and a sub-batch keeps each sample's targets; a
label outside ``[0, num_classes)`` is rejected with an error naming it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..batch import make_batch, select, shrink, synthetic_labels
from ..context import GuardContext
from ..contract import Rule
from ..result import CheckResult, Finding, conclude
from .common import Pass, coarse_of, integer_targets, run_pass, show

Targets = list[tuple[str, torch.Tensor]]

#: At least this many samples, so the labels span most coarse groups and a
#: second fine->coarse mapping cannot agree with the hierarchy by chance.
#: Targets do not depend on clip sizes, so the clips are always tiny ones.
MIN_SAMPLES = 8


def loss_targets(run: Pass) -> Targets:
    """``(module.argument, target)`` for every integer target a head loss received."""
    count = run.labels().numel()
    return [(f'{call.module}({name})', value.detach().cpu())
            for call in run.recorder.under('cls_head.')
            for name, value in integer_targets(call, count)]


def _meaning(ctx: GuardContext, run: Pass, targets: Targets,
             findings: list[Finding]) -> set[str]:
    fine = run.labels()
    coarse = coarse_of(ctx, fine)
    kinds = set()
    for where, target in targets:
        if torch.equal(target, fine):
            kinds.add('fine')
        elif torch.equal(target, coarse):
            kinds.add('coarse')
        else:
            findings.append(Finding(Rule.LABELS,
                f'{where} received {show(target)}; the labels are '
                f'{show(fine)} and hierarchy(labels) is {show(coarse)}'))
    return kinds


def _consistent(ctx: GuardContext, run: Pass, base: Targets, order: list[int], what: str,
                findings: list[Finding]) -> None:
    """Targets of ``run``'s batch re-ordered by ``order`` must be ``base`` re-ordered."""
    other = loss_targets(run_pass(ctx, 'loss', batch=select(run.batch, order)))
    if len(other) != len(base):
        findings.append(Finding(Rule.LABELS,
            f'{what}: the losses received {len(other)} targets instead '
            f'of {len(base)}'))
        return
    index = torch.tensor(order)
    for (where, target), (_, changed) in zip(base, other):
        expected = target[index]
        if not torch.equal(changed, expected):
            findings.append(Finding(Rule.LABELS,
                f'{what} changed the targets of {where}: expected '
                f'{show(expected)}, got {show(changed)}'))


def _out_of_range(ctx: GuardContext, findings: list[Finding]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    labels = synthetic_labels(ctx.recipe.batch_size, ctx.recipe.num_classes)
    for bad in (ctx.recipe.num_classes, -1):
        run = run_pass(ctx, 'loss', batch=make_batch(ctx.recipe, labels=[bad] + labels[1:]))
        reached = [where for where, target in loss_targets(run) if bad in target.tolist()]
        seen[str(bad)] = run.error
        if run.error is None:
            findings.append(Finding(Rule.LABELS,
                f'label {bad} (outside [0, {ctx.recipe.num_classes})) '
                                         'was accepted: no error was raised'
                                         + (f'; it reached {reached[0]}' if reached else '')))
        elif reached:
            findings.append(Finding(Rule.LABELS, f'label {bad} reached {reached[0]} before it was '
                                                 f'rejected ({run.error})'))
        elif str(bad) not in run.error:
            findings.append(Finding(Rule.LABELS,
                f'label {bad} was rejected with an error that does not '
                f'name it: {run.error}'))
    return seen


def check(ctx: GuardContext) -> CheckResult:
    """Targets equal labels or hierarchy(labels), per sample, and bad labels are rejected."""
    findings: list[Finding] = []
    size = max(ctx.recipe.batch_size, MIN_SAMPLES)
    ctx = replace(ctx, recipe=replace(shrink(ctx.recipe), batch_size=size))
    run = run_pass(ctx, 'loss')
    targets = loss_targets(run)
    if run.error:
        findings.append(Finding(Rule.LABELS, f'loss mode raised {run.error}'))
    elif not targets:
        findings.append(Finding(Rule.LABELS,
            'no loss module of the head received an integer target, so '
            'the targets cannot be verified (losses must be modules '
            'called with the label tensor)'))
    kinds = _meaning(ctx, run, targets, findings)
    for kind in ('fine', 'coarse'):
        if targets and kind not in kinds:
            findings.append(Finding(Rule.LABELS, f'no loss received the {kind} labels'))
    if targets and not findings:  # size >= MIN_SAMPLES, so a sub-batch always exists
        _consistent(ctx, run, targets, list(reversed(range(size))), 'reversing the batch',
                    findings)
        _consistent(ctx, run, targets, list(range(1, size)), 'dropping the first sample',
                    findings)
    rejected = _out_of_range(ctx, findings)
    return conclude('labels', findings,
                    f'{len(targets)} loss targets equal labels or hierarchy(labels), follow '
                    'their samples, and out-of-range labels are rejected',
                    {'targets': {where: target.tolist() for where, target in targets},
                     'out_of_range_errors': rejected})
