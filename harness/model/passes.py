"""One recorded forward pass of the recognizer on the synthetic batch, and what it predicted.

Every check, the trace and the size probes read the model through these passes:
a pass records each module's call (:mod:`epam_guard.probe.recording`) and is
kept on the context, so checks asking for the same mode share it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from ..contract.errors import one_line
from ..contract.profiles import PREDICTION_FIELDS
from ..probe.recording import CallRecorder, record
from ..report.result import bounded
from .batch import labels_of, make_batch, preprocess, value_recipe

if TYPE_CHECKING:  # the context holds the passes; a pass only reads the context
    from .context import GuardContext


@dataclass
class Pass:
    """One recorded call of the recognizer in a given mode."""

    mode: str
    batch: dict[str, Any]
    data: dict[str, Any]
    views: int
    recorder: CallRecorder
    output: Any
    error: str | None

    def labels(self) -> torch.Tensor:
        """The fine labels per clip, as the backbone should receive them in loss mode."""
        fine = torch.tensor(labels_of(self.batch), dtype=torch.long)
        return fine.repeat_interleave(self.views)


def value_context(ctx: GuardContext) -> GuardContext:
    """The context the value checks run on: at ``ntu`` size, the config's clip lengths
    with space shrunk to the tiny crop.

    Targets, routing, losses going down, gradients and predictions following
    their samples do not depend on the crop, and the clip lengths are kept for
    models that hard-code them; the full-size shapes are ``structure``'s, from
    a shape-only pass (:func:`shape_pass`). At ``tiny`` it is ``ctx`` itself.
    """
    values = value_recipe(ctx.recipe)
    return ctx if values == ctx.recipe else replace(ctx, recipe=values)


def shape_pass(ctx: GuardContext, mode: str) -> tuple[Pass, str | None]:
    """A pass at the recipe's full size on the ``meta`` device: shapes, dtypes and routing
    without arithmetic. Returns the pass and None, or, for a model that cannot run
    there, a real pass and the reason it could not."""
    key = ('meta', mode, ctx.recipe, id(ctx.model))
    if key in ctx.passes:
        return ctx.passes[key]
    meta = copy.deepcopy(ctx.model).to('meta')
    training = mode == 'loss'
    views = 1 if training else ctx.recipe.views
    batch = make_batch(ctx.recipe, views=views, meta=True)
    meta.train(training)
    try:
        data = preprocess(meta, batch, training)
        with torch.no_grad():
            recorder, output, error = record(meta, lambda: meta(**data, mode=mode))
    except Exception as exc:  # the preprocessor itself cannot run there
        error = one_line(exc, location=False)
    if error is None:
        found: tuple[Pass, str | None] = (
            Pass(mode, batch, data, views, recorder, output, None), None)
    else:
        found = (run_pass(ctx, mode), f'it cannot run on the meta device ({bounded(error, 160)})')
    ctx.passes[key] = found
    return found


def run_pass(ctx: GuardContext, mode: str, *, batch: dict[str, Any] | None = None,
             views: int | None = None) -> Pass:
    """Preprocess a synthetic batch and call the recognizer in ``mode``, recording calls.

    ``loss`` runs in train mode with one view; ``predict``/``tensor`` in eval
    mode with the test pipeline's views unless ``views`` says otherwise. No
    autograd graph is kept: these passes observe calls and values, and at NTU
    size a graph would cost gigabytes (``train_step`` does its own backward).

    The default pass of each mode is recorded once per model and recipe and
    shared by the checks that read it (they only observe it).
    """
    model = ctx.model
    key = (mode, ctx.recipe, id(model)) if batch is None and views is None else None
    if key is not None and key in ctx.passes:
        return ctx.passes[key]
    training = mode == 'loss'
    if views is None:
        views = 1 if training else ctx.recipe.views
    batch = batch if batch is not None else make_batch(ctx.recipe, views=views)
    model.train(training)
    data = preprocess(model, batch, training)
    with torch.no_grad():
        recorder, output, error = record(model, lambda: model(**data, mode=mode))
    result = Pass(mode, batch, data, views, recorder, output, error)
    if key is not None:
        ctx.passes[key] = result
    return result


def has_hierarchy(ctx: GuardContext) -> bool:
    """Whether the context's profile judges targets by a hierarchy, and there is one."""
    return ctx.profile.hierarchy and ctx.hierarchy is not None


def coarse_of(ctx: GuardContext, fine: torch.Tensor) -> torch.Tensor:
    """``hierarchy(fine)`` with the guard's own hierarchy (``ctx.hierarchy``: ``--hierarchy``
    or the config), never with the model's: the referee is not the code under test.
    Where the profile has no hierarchy, an empty tensor: no target equals it."""
    if ctx.hierarchy is None or not has_hierarchy(ctx):
        return torch.empty(0, dtype=torch.long)
    return ctx.hierarchy(fine.cpu()).long()


# ------------------------------------------------------------------ predictions
def prediction_of(sample: Any) -> tuple[str | None, Any]:
    """``(field, scores)`` of a predicted data sample, from either MMAction2 API.

    ``pred_score`` (1.2) holds a tensor or a dict of tensors; ``pred_scores``
    (1.0/1.1) a ``LabelData`` whose fields are the scores (``item`` for a
    single one). Scores come back as a tensor or a plain dict of tensors;
    ``(None, None)`` when the sample carries neither field.
    """
    keys = set(sample.keys()) if callable(getattr(sample, 'keys', None)) else set()
    for name in PREDICTION_FIELDS:
        if name not in keys:
            continue
        value = sample.get(name)
        if callable(getattr(value, 'keys', None)) and not isinstance(value, dict):
            value = dict(value.items())  # LabelData (1.0/1.1)
        if isinstance(value, dict) and set(value) == {'item'}:
            value = value['item']
        return name, value
    return None, None


def score_vector(scores: Any) -> torch.Tensor | None:
    """One flat float vector of a sample's scores (dict entries in key order)."""
    if isinstance(scores, torch.Tensor):
        return scores.detach().float().flatten().cpu()
    if isinstance(scores, dict) and scores and all(
            isinstance(v, torch.Tensor) for v in scores.values()):
        return torch.cat([scores[k].detach().float().flatten().cpu() for k in sorted(scores)])
    return None


def scores_of(run: Pass) -> torch.Tensor | None:
    """One row of scores per predicted sample of a predict pass, or None if some sample has
    none (or the rows differ in width)."""
    if not isinstance(run.output, (list, tuple)):
        return None
    rows = [score_vector(prediction_of(sample)[1]) for sample in run.output]
    present = [row for row in rows if row is not None]
    if len(present) != len(rows) or len({row.numel() for row in present}) != 1:
        return None
    return torch.stack(present)
