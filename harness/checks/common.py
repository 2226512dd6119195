"""What several checks share: one recorded forward pass, label tensors, formatting."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..batch import labels_of, make_batch, preprocess
from ..context import GuardContext
from ..describe import dtype_name
from ..recording import CallRecorder, record

MAX_SHOWN = 8


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


def show(tensor: Any) -> str:
    """Values of a small integer tensor, capped, with dtype and device."""
    if not isinstance(tensor, torch.Tensor):
        return repr(tensor) if tensor is None else type(tensor).__name__
    values = tensor.detach().flatten().tolist()
    head = ', '.join(str(v) for v in values[:MAX_SHOWN])
    more = f', ... {len(values) - MAX_SHOWN} more' if len(values) > MAX_SHOWN else ''
    return f'[{head}{more}] ({dtype_name(tensor.dtype)}, {tensor.device.type})'


def same_labels(found: Any, expected: torch.Tensor) -> bool:
    """True when ``found`` is an int64 tensor with exactly ``expected``'s values."""
    return (isinstance(found, torch.Tensor) and found.dtype == torch.long
            and found.shape == expected.shape
            and bool(torch.equal(found.detach().cpu(), expected.cpu())))


def coarse_of(ctx: GuardContext, fine: torch.Tensor) -> torch.Tensor:
    """``hierarchy(fine)`` with the hierarchy the config defines."""
    return ctx.hierarchy(fine.cpu()).long()


def integer_targets(call: Any, count: int) -> list[tuple[str, torch.Tensor]]:
    """The per-sample integer tensors (length ``count``) among a call's arguments."""
    return [(name, value) for name, value in call.tensors()
            if not value.is_floating_point() and value.dim() == 1 and value.numel() == count]
