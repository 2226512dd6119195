"""Check ``summary``: parameter counts per part, from torchinfo's structured fields.

Fails when a part that has parameters has no trainable one (a stream frozen
by mistake never learns) or when the recognizer cannot run a tensor-mode pass
through torchinfo at all.
"""
from __future__ import annotations

from typing import Any

import torch

from ..batch import make_batch, preprocess
from ..context import GuardContext
from ..contract import Rule
from ..result import CheckResult, Finding, conclude


def parameter_table(ctx: GuardContext) -> dict[str, Any]:
    """``{'parts': {name: {'params', 'trainable'}}, 'total': ..., 'mult_adds': ...}``.

    Parts are the recognizer's children and the backbone's children, as
    torchinfo sees them in one eval-mode, tensor-mode pass of a one-view batch.
    """
    from torchinfo import summary

    model = ctx.model
    model.eval()
    data = preprocess(model, make_batch(ctx.recipe, views=1), False)
    with torch.no_grad():
        # Extra keywords go to the recognizer's forward: stage='head' runs the head too.
        stats = summary(model, input_data=[data['inputs']], stage='head', depth=2,
                        verbose=0, device=ctx.device)
    parts: dict[str, dict[str, int]] = {}
    for layer in stats.summary_list:
        if layer.depth == 1 or (layer.depth == 2 and layer.parent_info is not None
                                and layer.parent_info.var_name == 'backbone'):
            prefix = 'backbone.' if layer.depth == 2 else ''
            parts[prefix + layer.var_name] = {'params': layer.num_params,
                                              'trainable': layer.trainable_params}
    return {'parts': parts, 'total': stats.total_params, 'trainable': stats.trainable_params,
            'mult_adds': stats.total_mult_adds}


def check(ctx: GuardContext) -> CheckResult:
    """Every part with parameters trains; counts are reported per part."""
    table = parameter_table(ctx)
    findings = [Finding(Rule.STATE,
        f'{name} has {counts["params"]:,} parameters and none is trainable')
                for name, counts in table['parts'].items()
                if counts['params'] and not counts['trainable']]
    return conclude('summary', findings,
                    f'{table["trainable"]:,} trainable of {table["total"]:,} parameters in '
                    f'{len(table["parts"])} parts', table)
