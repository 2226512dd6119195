"""``epam_guard.probe.state``: copies of a model's tensors, put back in place, compared."""
from __future__ import annotations

import torch
from torch import nn

from epam_guard.probe import state


class Tiny(nn.Module):
    memory: torch.Tensor
    scratch: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.register_buffer('memory', torch.zeros(3))
        self.register_buffer('scratch', torch.ones(1), persistent=False)


def test_copy_tensors_are_detached_clones_of_parameters_and_buffers():
    model = Tiny()
    saved = state.copy_tensors(model)
    assert set(saved) == {'linear.weight', 'linear.bias', 'memory', 'scratch'}
    assert saved['linear.weight'].data_ptr() != model.linear.weight.data_ptr()
    assert not saved['linear.weight'].requires_grad
    assert set(state.copy_tensors(model, parameters=False)) == {'memory', 'scratch'}


def test_restore_writes_back_in_place_including_non_persistent_buffers():
    model = Tiny()
    weight = model.linear.weight
    saved = state.copy_tensors(model)
    with torch.no_grad():
        model.linear.weight.add_(1)
        model.memory.fill_(5)
        model.scratch.fill_(7)
    assert set(state.changed(model, saved)) == {'linear.weight', 'memory', 'scratch'}
    state.restore(model, saved)
    assert state.changed(model, saved) == []
    assert model.linear.weight is weight  # the same tensor: optimizers keep their references


def test_changed_names_tensors_that_are_gone():
    model = Tiny()
    saved = state.copy_tensors(model)
    del model.memory
    assert state.changed(model, saved) == ['memory']
