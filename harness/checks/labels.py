"""Check ``labels``: the targets every loss receives, and every prediction, follow their sample.

CONTRACT §5, read where the losses receive their targets (the head's loss
modules, recorded by forward pre-hooks): every integer target equals the fine
labels or, where the contract profile has a hierarchy (``epam``),
``hierarchy(fine)`` from the guard's own hierarchy (``ctx.hierarchy``, never
the model's), and some loss receives each; permuting the batch permutes the targets and a sub-batch
keeps each sample's targets; a label outside ``[0, num_classes)`` is rejected
with an error naming it. At inference with several views per sample, permuting
the batch permutes the predictions, a sample's prediction depends on its own
views only, and ``predict`` returns one prediction per input sample (§4).

Every step runs whatever an earlier one found, so two independent defects
are both reported. The clips have the context's size (``--size``, or the
clip lengths a fixed-length backbone needs); only the batch is enlarged.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..contract.profiles import Rule
from ..model.batch import make_batch, select, synthetic_labels
from ..model.context import GuardContext
from ..model.passes import Pass, coarse_of, has_hierarchy, run_pass, scores_of, value_context
from ..probe import state
from ..probe.describe import values
from ..report.result import CheckResult, Finding
from .common import finish, integer_targets

Targets = list[tuple[str, torch.Tensor]]

#: At least this many samples, so the labels span most coarse groups and a
#: second fine->coarse mapping cannot agree with the hierarchy by chance.
MIN_SAMPLES = 8
#: Predictions of the same sample in two batches may differ by this much
#: (float reductions over a different batch).
PREDICTION_TOLERANCE = 1e-5
#: A sample's prediction moving by more than this fraction of the change made
#: to another sample's own prediction means the two were mixed; never below
#: the floor (noise), never above PREDICTION_TOLERANCE.
LEAK_FRACTION = 0.01
LEAK_FLOOR = 1e-7


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
            also = (f' and hierarchy(labels) is {values(coarse)}' if has_hierarchy(ctx)
                    else '')
            findings.append(Finding(Rule.LABELS,
                f'{where} received {values(target)}; the labels are {values(fine)}{also}'))
    return kinds


def _consistent(ctx: GuardContext, run: Pass, base: Targets, order: list[int], what: str,
                findings: list[Finding]) -> None:
    """Targets of ``run``'s batch re-ordered by ``order`` must be ``base`` re-ordered.

    When a pass raised part-way (a model that validates its own targets), the
    targets recorded before the error are compared as far as both runs got.
    """
    again = run_pass(ctx, 'loss', batch=select(run.batch, order))
    other = loss_targets(again)
    if len(other) != len(base) and run.error is None and again.error is None:
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
                f'{values(expected)}, got {values(changed)}'))


def _out_of_range(ctx: GuardContext, findings: list[Finding],
                  warnings: list[str]) -> dict[str, Any]:
    """Labels ``num_classes`` and ``-1`` must be rejected (§5), by an error that names them.

    Severity follows the consequence: a label accepted in silence (clamped,
    wrapped, remapped) trains on a wrong target, a failure; one rejected by an
    unrelated error (an ``IndexError`` deep in a loss) stops training loudly,
    only with a message that does not help, a warning.
    """
    seen: dict[str, Any] = {}
    labels = synthetic_labels(ctx.recipe.batch_size, ctx.recipe.num_classes)
    for bad in (ctx.recipe.num_classes, -1):
        run = run_pass(ctx, 'loss', batch=make_batch(ctx.recipe, labels=[bad] + labels[1:]))
        reached = [where for where, target in loss_targets(run) if bad in target.tolist()]
        seen[str(bad)] = run.error
        outside = f'label {bad} (outside [0, {ctx.recipe.num_classes}))'
        if run.error is None:
            findings.append(Finding(Rule.LABELS,
                f'{outside} was accepted: no error was raised'
                + (f'; it reached {reached[0]}' if reached else '')))
        elif reached or str(bad) not in run.error:
            how = (f'only after it reached {reached[0]}' if reached else
                   'but the error does not name the label')
            warnings.append(f'[{Rule.LABELS}] {outside} was rejected, {how}: {run.error}; '
                            'training stops there, with a message that does not say why (check '
                            'the labels where the recognizer reads them)')
    return seen


def _distinct_clips(batch: dict[str, Any], index: int) -> dict[str, Any]:
    """``batch`` with every view of sample ``index`` replaced by a uniform clip, in the
    batch's own form (a dict of modalities or one list of tensors).

    A uniform clip moves a freshly initialised model's pooled features much
    more than new noise would, so its effect on the prediction is measurable.
    """
    def uniform(clips: list[torch.Tensor]) -> list[torch.Tensor]:
        clips = list(clips)
        clips[index] = torch.full_like(clips[index], float(clips[index].max()))
        return clips

    inputs = batch['inputs']
    changed = ({key: uniform(clips) for key, clips in inputs.items()}
               if isinstance(inputs, dict) else uniform(inputs))
    return {'inputs': changed, 'data_samples': batch['data_samples']}


def _incomparable(what: str, run: Pass, scores: torch.Tensor) -> Finding:
    """A second predict pass whose predictions cannot be compared with the first's."""
    got = run.error or (f'{len(run.output)} predictions' if isinstance(run.output, (list, tuple))
                        else type(run.output).__name__)
    return Finding(Rule.LABELS, f'{what} at inference gave predictions that cannot be compared '
                                f'with the batch\'s own ({tuple(scores.shape)} scores before, '
                                f'then {got}): the same samples must give the same predictions')


def _predictions(ctx: GuardContext, findings: list[Finding]) -> dict[str, Any]:
    """Per-sample predictions at inference with V >= 2 views (CONTRACT §4, §5)."""
    views = max(ctx.recipe.views, 2)
    size = max(ctx.recipe.batch_size, 2)
    recipe = replace(ctx.recipe, batch_size=size, views=views)
    saved = state.copy_tensors(ctx.model)

    def predict(batch: dict[str, Any]) -> Pass:
        # Every pass from the same model state, and never a cached pass (recorded
        # from whatever state an earlier check left): only the batch differs.
        state.restore(ctx.model, saved)
        return run_pass(ctx, 'predict', batch=batch, views=views)

    base = predict(make_batch(recipe, views=views))
    seen: dict[str, Any] = {'samples': size, 'views': views}
    if base.error is not None or not isinstance(base.output, (list, tuple)):
        outcome = (f'raised {base.error}' if base.error else
                   f'returned {type(base.output).__name__}, not a list of data samples')
        findings.append(Finding(Rule.HEAD,
            f'predict mode ({size} samples x {views} views) {outcome}'))
        return seen
    seen['predictions'] = len(base.output)
    if len(base.output) != size:
        findings.append(Finding(Rule.HEAD,
            f'predict returned {len(base.output)} predictions for {size} input samples of '
            f'{views} views each; it must return one per input sample, its views averaged '
            '(MMAction2 pairs predictions with samples and the metric counts them)'))
        return seen
    scores = scores_of(base)
    if scores is None:
        findings.append(Finding(Rule.HEAD, 'predict left some samples without a score '
                                           '(pred_score / pred_scores) to compare'))
        return seen
    order = list(reversed(range(size)))
    again = predict(select(base.batch, order))
    permuted = scores_of(again)
    if permuted is None or permuted.shape != scores.shape:
        findings.append(_incomparable('reversing the batch', again, scores))
    else:
        moved = (permuted - scores[torch.tensor(order)]).abs().amax(dim=1)
        seen['reversed_max_difference'] = float(moved.max())
        worst = int(moved.argmax())
        if moved[worst] > PREDICTION_TOLERANCE:
            findings.append(Finding(Rule.LABELS,
                f'reversing the batch at inference ({views} views per sample) changed the '
                f'prediction of sample {order[worst]} by {float(moved[worst]):.3g} '
                f'(> {PREDICTION_TOLERANCE:g}): predictions do not follow their samples'))
    other = predict(_distinct_clips(base.batch, 0))
    changed = scores_of(other)
    if changed is None or changed.shape != scores.shape:
        findings.append(_incomparable('replacing the views of sample 0', other, scores))
    else:
        moved = (changed - scores).abs().amax(dim=1)
        own, others = float(moved[0]), moved[1:]
        limit = max(LEAK_FLOOR, min(PREDICTION_TOLERANCE, LEAK_FRACTION * own))
        seen.update(own_change=own, others_max_change=float(others.max()))
        leaked = [i + 1 for i, value in enumerate(others.tolist()) if value > limit]
        if own == 0:
            findings.append(Finding(Rule.LABELS,
                'replacing the views of sample 0 did not change its prediction at all: the '
                'predictions do not depend on the inputs, so they cannot follow their samples'))
        elif leaked:
            findings.append(Finding(Rule.LABELS,
                f'replacing the {views} views of sample 0 changed the prediction of sample(s) '
                f'{leaked} by up to {float(others.max()):.3g} (its own moved {own:.3g}): views '
                'are averaged across samples, not within each sample (check the reshape '
                'before average_clip: (N*V, C) -> (N, V, C))'))
    return seen


def check(ctx: GuardContext) -> CheckResult:
    """Targets and predictions follow their samples; bad labels are rejected."""
    findings: list[Finding] = []
    ctx = value_context(ctx)  # targets do not depend on the crop; clip lengths are kept
    size = max(ctx.recipe.batch_size, MIN_SAMPLES)
    sized = replace(ctx, recipe=replace(ctx.recipe, batch_size=size))
    run = run_pass(sized, 'loss')
    targets = loss_targets(run)
    if run.error:
        findings.append(Finding(Rule.LABELS, f'loss mode raised {run.error}'))
    elif not targets:
        findings.append(Finding(Rule.LABELS,
            'no loss module of the head received an integer target, so '
            'the targets cannot be verified (losses must be modules '
            'called with the label tensor)'))
    kinds = _meaning(sized, run, targets, findings)
    expected = ('fine', 'coarse') if has_hierarchy(ctx) else ('fine',)
    for kind in expected:
        if targets and kind not in kinds:
            findings.append(Finding(Rule.LABELS, f'no loss received the {kind} labels'))
    if targets:  # size >= MIN_SAMPLES, so a sub-batch always exists
        _consistent(sized, run, targets, list(reversed(range(size))), 'reversing the batch',
                    findings)
        _consistent(sized, run, targets, list(range(1, size)), 'dropping the first sample',
                    findings)
    warnings: list[str] = []
    rejected = _out_of_range(sized, findings, warnings)
    predictions = _predictions(ctx, findings)
    recipe = sized.recipe
    return finish('labels', findings,
                  f'{len(targets)} loss targets equal labels'
                  f'{" or hierarchy(labels)" if has_hierarchy(ctx) else ""} and follow '
                  f'their samples; {predictions.get("predictions")} predictions follow their '
                  f'samples ({predictions["views"]} views each); out-of-range labels are '
                  'rejected',
                  {'targets': {where: target.tolist() for where, target in targets},
                   'out_of_range_errors': rejected, 'predictions': predictions,
                   'recipe': {'samples': size, 'rgb_frames': recipe.rgb_frames,
                              'pose_frames': recipe.pose_frames, 'crop': recipe.crop,
                              'heatmap': recipe.heatmap}}, warnings=warnings)
