"""The pieces of ``first_pass`` on tiny modules: signatures, changed rows, the labels it picks."""
from __future__ import annotations

import torch
from torch import nn

from epam_guard.checks.first_pass import (
    changed_rows,
    class_state,
    coincidence_free_labels,
    row_findings,
    signature,
    signature_findings,
)
from epam_guard.contract.profiles import Rule
from epam_guard.contract.referee import Hierarchy

SIX_BY_THREE = Hierarchy((0, 0, 1, 1, 2, 2), 'test')


def test_a_parameter_made_at_the_top_and_a_lazy_layer_are_both_named():
    model = nn.Module()
    model.lazy = nn.LazyLinear(4)
    built = signature(model)
    model.lazy(torch.zeros(2, 3))
    model.extra = nn.Parameter(torch.zeros(5))
    model.register_buffer('gone', torch.zeros(1))
    messages = [f.message for f in signature_findings(built, signature(model), 'loss')]
    assert messages[0].startswith('(model) gained extra (parameter (5,)), gone (buffer (1,)) in '
                                  'the first loss pass: it is made in forward()')
    assert 'lazy.weight (parameter) changed shape from uninitialised to (4, 3) in the first ' \
        'loss pass (a lazily initialised layer in lazy)' in messages[-2]
    assert all('create it in __init__' in m for m in messages)


def test_changed_rows_are_exact_and_an_untouched_nan_row_is_unchanged():
    before = torch.tensor([[0.0, 1.0], [float('nan'), 2.0], [3.0, 4.0]])
    now = before.clone()
    now[2, 1] = 5.0
    assert changed_rows(now, before) == [2]
    assert changed_rows(before.long(), before.long()) == []


def test_rows_written_at_the_coarse_labels_are_named_as_such():
    labels = coincidence_free_labels(SIX_BY_THREE)
    coarse = sorted(set(SIX_BY_THREE(torch.tensor(labels)).tolist()))
    assert row_findings('memory', 6, sorted(set(labels)), labels, SIX_BY_THREE) == []
    assert row_findings('coarse_memory', 3, coarse, labels, SIX_BY_THREE) == []
    (finding,) = row_findings('memory', 6, coarse, labels, SIX_BY_THREE)
    assert finding.rule is Rule.LABELS
    assert finding.message.startswith(f'memory (6 rows, one per fine class) changed at rows '
                                      f"{coarse} in one training-mode loss pass, but the batch's "
                                      f'labels are {sorted(set(labels))}')
    assert finding.message.endswith('they are the rows of hierarchy(labels)')


def test_labels_on_a_small_hierarchy_stay_above_the_coarse_rows():
    labels = coincidence_free_labels(SIX_BY_THREE)
    assert min(labels) >= SIX_BY_THREE.num_coarse_classes


def test_running_statistics_are_not_class_state():
    head = nn.Module()
    head.bn = nn.BatchNorm1d(6)
    head.register_buffer('memory', torch.zeros(6, 2))
    model = nn.Module()
    model.cls_head = head
    assert sorted(class_state(model, (6, 3))) == ['cls_head.memory']
