"""Copies of a model's tensors: taken before a check, compared or put back after.

One helper for the engine (restore everything after each check), ``train_step``
(put buffers back so only the parameters moved) and ``eval_purity`` (did
inference change anything). In-place copies are far cheaper than
``load_state_dict`` and also cover non-persistent buffers.
"""
from __future__ import annotations

import torch
from torch import nn


def tensors(model: nn.Module, parameters: bool = True) -> dict[str, torch.Tensor]:
    """Buffers (and parameters, unless ``parameters=False``) by dotted name."""
    named = dict(model.named_parameters()) if parameters else {}
    return {**named, **dict(model.named_buffers())}


def copy_tensors(model: nn.Module, parameters: bool = True) -> dict[str, torch.Tensor]:
    """Detached clones of :func:`tensors`, to :func:`restore` or compare with :func:`changed`."""
    return {name: t.detach().clone() for name, t in tensors(model, parameters).items()}


def restore(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Copy the saved values back into the model's tensors, in place."""
    with torch.no_grad():
        for name, tensor in tensors(model).items():
            if name in saved:
                tensor.copy_(saved[name])


def changed(model: nn.Module, saved: dict[str, torch.Tensor]) -> list[str]:
    """Names whose values differ from ``saved`` (or that are gone)."""
    now = tensors(model)
    return [name for name, value in saved.items()
            if name not in now or not torch.equal(now[name], value)]
