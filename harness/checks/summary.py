"""Check ``summary``: parameter counts per part, from torchinfo's structured fields.

Fails when a part that has parameters has no trainable one (a stream frozen
by mistake never learns); is an error when the recognizer cannot run a
tensor-mode pass through torchinfo at all. torchinfo's own error lists every
layer it executed (thousands of characters): the verdict names the model's
exception and the last layer reached instead, and the full text goes to the
details.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import torch

from ..contract.errors import one_line
from ..contract.profiles import Rule
from ..model.batch import make_batch, preprocess
from ..model.context import GuardContext
from ..report.result import CheckResult, Finding, Status
from .common import bounded, finish


class SummaryFailed(Exception):
    """The tensor-mode pass under torchinfo raised; ``cause`` is the model's exception."""

    def __init__(self, cause: BaseException, layers: list[str], full: str) -> None:
        super().__init__(one_line(cause))
        self.cause, self.layers, self.full = cause, layers, full


def parameter_table(ctx: GuardContext, meta: bool | None = None) -> dict[str, Any]:
    """``{'parts': {name: {'params', 'trainable'}}, 'total': ..., 'mult_adds': ...}``.

    Parts are the recognizer's children and the backbone's children, as
    torchinfo sees them in one eval-mode, tensor-mode pass of a one-view batch.
    At ``ntu`` size (``meta`` None) the pass runs on a copy of the model on the
    ``meta`` device: counts need shapes only; a model that cannot run there
    gets a real pass (``meta_error`` in the table says why).

    Raises:
        SummaryFailed: the pass raised inside the model.
    """
    from torchinfo import summary

    meta = ctx.recipe.size == 'ntu' if meta is None else meta
    if meta:
        try:
            table = parameter_table(replace(ctx, model=copy.deepcopy(ctx.model).to('meta'),
                                            device=torch.device('meta')), meta=False)
        except SummaryFailed as exc:
            table = parameter_table(ctx, meta=False)
            table['meta_error'] = str(exc)
        return table
    model = ctx.model
    model.eval()
    data = preprocess(model, make_batch(ctx.recipe, views=1, meta=ctx.device.type == 'meta'),
                      False)
    # Which layers ran, recorded here: torchinfo only puts them in its message.
    ran: list[str] = []
    handles = [module.register_forward_hook(lambda m, i, o, name=name: ran.append(name))
               for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            # Extra keywords go to the recognizer's forward: stage='head' runs the head too.
            stats = summary(model, input_data=[data['inputs']], stage='head', depth=2,
                            verbose=0, device=ctx.device)
    except RuntimeError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise SummaryFailed(cause, ran, str(exc)) from exc
    finally:
        for handle in handles:
            handle.remove()
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
    try:
        table = parameter_table(ctx)
    except SummaryFailed as failed:
        last = f' after {failed.layers[-1]} ran' if failed.layers else ''
        return CheckResult('summary', Status.ERROR,
                           bounded(f'the tensor-mode pass under torchinfo raised '
                                   f'{one_line(failed.cause)}{last}'),
                           details={'error': one_line(failed.cause),
                                    'layers_run': len(failed.layers),
                                    'last_layers': failed.layers[-5:],
                                    'torchinfo': failed.full})
    findings = [Finding(Rule.STATE,
        f'{name} has {counts["params"]:,} parameters and none is trainable')
                for name, counts in table['parts'].items()
                if counts['params'] and not counts['trainable']]
    return finish('summary', findings,
                  f'{table["trainable"]:,} trainable of {table["total"]:,} parameters in '
                  f'{len(table["parts"])} parts', table)
