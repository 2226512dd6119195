"""Check ``label_blind``: predictions do not read the labels the data samples carry.

CONTRACT §7, every profile. MMAction2 hands ``predict`` the data samples with
their ground truth still in them (the API writes the predictions into them),
so a head can read the answer at inference: mask its scores by the
ground-truth group, pick a prototype by the label, fall back to the label
where it is unsure. No routing record shows that (the samples are allowed
there); only behaviour does. The same inputs are predicted with the batch's
labels, then with those labels shuffled, all set to one class, and set
outside ``[0, num_classes)``, each pass from the same model state; every
sample's scores must be the same in all of them.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..contract.profiles import Rule
from ..model.batch import make_batch, rolled, synthetic_labels
from ..model.context import GuardContext
from ..model.passes import Pass, run_pass, scores_of, value_context
from ..probe import state
from ..report.result import CheckResult, Finding
from .common import finish

#: Scores of the same inputs from the same model state may differ by this much (none is
#: expected; float reductions are deterministic on one device for one batch).
TOLERANCE = 1e-6
#: At least this many samples, so shuffled labels differ from the given ones everywhere.
MIN_SAMPLES = 2


def relabelled(labels: list[int], num_classes: int) -> dict[str, list[int]]:
    """The labels the samples carry in each pass after the first, by what was done to them.

    Every variant changes every sample's label (shuffling rotates distinct labels by
    one; the constant is a class no sample has, where one is left).
    """
    unused = next((c for c in range(num_classes - 1, -1, -1) if c not in labels), labels[-1])
    return {
        'shuffled': rolled(labels),
        'constant': [unused] * len(labels),
        'out of range': [num_classes + i if i % 2 == 0 else -1 - i for i in range(len(labels))],
    }


def _compare(kind: str, base: torch.Tensor, run: Pass, findings: list[Finding],
             seen: dict[str, Any]) -> None:
    """The scores of ``run`` (labels changed by ``kind``) against ``base``'s."""
    if run.error is not None:
        findings.append(Finding(Rule.BLIND,
            f'predict raised {run.error} when the data samples carried {kind} labels, and '
            'ran with the batch\'s own: predict reads the labels'))
        return
    scores = scores_of(run)
    if scores is None or scores.shape != base.shape:
        got = 'no comparable scores' if scores is None else f'scores {tuple(scores.shape)}'
        findings.append(Finding(Rule.BLIND,
            f'with {kind} labels predict gave {got}, with the batch\'s own '
            f'{tuple(base.shape)}: predict reads the labels'))
        return
    moved = (scores - base).abs().amax(dim=1)
    seen[kind] = float(moved.max())
    changed = [i for i, value in enumerate(moved.tolist()) if value > TOLERANCE]
    if changed:
        findings.append(Finding(Rule.BLIND,
            f'with {kind} labels in the data samples predict changed the scores of '
            f'sample(s) {changed} by up to {float(moved.max()):.3g} (same inputs, same model '
            'state): predictions read the ground truth, so validation accuracy is not the '
            "model's"))


def check(ctx: GuardContext) -> CheckResult:
    """The same inputs give the same scores whatever labels their data samples carry."""
    ctx = value_context(ctx)  # what predict reads does not depend on the crop
    recipe = ctx.recipe
    size = max(recipe.batch_size, MIN_SAMPLES)
    views = min(recipe.views, 2)  # two views show a per-view read; more only cost time
    sized = replace(recipe, batch_size=size)
    labels = synthetic_labels(size, recipe.num_classes)
    saved = state.copy_tensors(ctx.model)

    def predict(given: list[int]) -> Pass:
        state.restore(ctx.model, saved)  # every pass from the same model state
        return run_pass(ctx, 'predict', batch=make_batch(sized, views=views, labels=given),
                        views=views)

    findings: list[Finding] = []
    seen: dict[str, Any] = {'samples': size, 'views': views, 'labels': labels}
    base = predict(labels)
    scores = scores_of(base) if base.error is None else None
    if scores is None:
        outcome = f'raised {base.error}' if base.error else 'left samples without scores'
        findings.append(Finding(Rule.BLIND,
            f'predict ({size} samples x {views} views) {outcome}, so no scores show that '
            'predictions ignore the labels'))
    else:
        for kind, given in relabelled(labels, recipe.num_classes).items():
            _compare(kind, scores, predict(given), findings, seen)
    state.restore(ctx.model, saved)
    return finish('label_blind', findings,
                  f'{size} samples x {views} views: the same scores with the batch\'s labels, '
                  'shuffled, constant and out of range',
                  {'max_difference': seen})
