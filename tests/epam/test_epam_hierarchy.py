"""Tests of epam.hierarchy: the one fine-to-coarse mapping."""
from __future__ import annotations

import copy

import pytest
import torch

from epam.hierarchy import NTU60_HIERARCHY, LabelHierarchy, LabelRangeError, labels_from_samples


@pytest.fixture
def ntu60() -> LabelHierarchy:
    return LabelHierarchy.build(None)


def test_default_is_ntu60_with_8_groups(ntu60: LabelHierarchy) -> None:
    assert ntu60.num_classes == 60
    assert ntu60.num_coarse_classes == 8
    assert ntu60 == LabelHierarchy(**NTU60_HIERARCHY)


def test_config_hierarchy_equals_default(model_cfg: dict, ntu60: LabelHierarchy) -> None:
    assert LabelHierarchy.build(model_cfg['hierarchy']) == ntu60


def test_fine_to_coarse_mapping(ntu60: LabelHierarchy) -> None:
    fine = torch.tensor([0, 9, 10, 29, 30, 44, 45, 49, 50, 54, 55, 59])
    expected = torch.tensor([0, 0, 1, 2, 3, 4, 5, 5, 6, 6, 7, 7])
    coarse = ntu60(fine)
    assert coarse.dtype == torch.long
    assert torch.equal(coarse, expected)
    assert torch.equal(ntu60.fine_to_coarse[fine], expected)


def test_mapping_keeps_shape_and_is_per_sample(ntu60: LabelHierarchy) -> None:
    fine = torch.tensor([[3, 57], [41, 12]])
    assert torch.equal(ntu60(fine), torch.tensor([[0, 7], [4, 1]]))
    perm = torch.tensor([3, 0, 2, 1])
    flat = fine.flatten()
    assert torch.equal(ntu60(flat[perm]), ntu60(flat)[perm])


def test_membership_matches_mapping(ntu60: LabelHierarchy) -> None:
    m = ntu60.membership
    assert m.shape == (60, 8) and m.dtype == torch.float32
    assert torch.equal(m.sum(dim=1), torch.ones(60))
    assert torch.equal(m.argmax(dim=1), ntu60.fine_to_coarse)
    assert m.sum(dim=0).tolist() == [10, 10, 10, 10, 5, 5, 5, 5]


def test_unsorted_groups_define_coarse_order() -> None:
    h = LabelHierarchy(num_classes=4, groups=[[2, 3], [0, 1]])
    assert h(torch.tensor([0, 1, 2, 3])).tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize('groups, message', [
    ([[0, 5], [5, 9]], 'overlap: fine label 5'),
    ([[0, 4], [6, 9]], 'are in no group: [5]'),
    ([[0, 9], [10, 12]], 'hi <= 9'),
    ([[3, 1], [4, 9]], 'lo <= hi'),
    ([[-1, 9]], '0 <= lo'),
    ([[0, 9, 1]], 'inclusive [lo, hi] pair'),
    ([[0.0, 9]], 'pair of ints'),
    ([], 'non-empty'),
])
def test_groups_must_partition(groups: list, message: str) -> None:
    with pytest.raises(ValueError) as info:
        LabelHierarchy(num_classes=10, groups=groups)
    assert message in str(info.value)


@pytest.mark.parametrize('cfg, error', [
    (dict(num_classes=10), ValueError),
    (dict(num_classes=10, groups=[[0, 9]], extra=1), ValueError),
    ([[0, 9]], TypeError),
])
def test_build_rejects_bad_configs(cfg: object, error: type) -> None:
    with pytest.raises(error):
        LabelHierarchy.build(cfg)  # type: ignore[arg-type]  # wrong types on purpose


def test_build_does_not_modify_config(model_cfg: dict) -> None:
    cfg = copy.deepcopy(model_cfg['hierarchy'])
    h = LabelHierarchy.build(cfg)
    assert cfg == model_cfg['hierarchy']
    assert h.to_config() == {'num_classes': 60, 'groups': [list(g) for g in h.groups]}
    assert LabelHierarchy.build(h) is h


@pytest.mark.parametrize('bad', [[60], [-1], [3, 75, 60, 2]])
def test_out_of_range_labels_are_rejected(ntu60: LabelHierarchy, bad: list) -> None:
    labels = torch.tensor(bad)
    for call in (ntu60.validate, ntu60):
        with pytest.raises(LabelRangeError) as info:
            call(labels)
        message = str(info.value)
        assert '[0, 60)' in message
        offending = sorted(v for v in bad if not 0 <= v < 60)
        assert str(offending).replace(' ', '') in message.replace(' ', '')


def test_label_range_error_is_a_value_error() -> None:
    assert issubclass(LabelRangeError, ValueError)


def test_coarse_labels_are_checked_too(ntu60: LabelHierarchy) -> None:
    ntu60.validate_coarse(torch.tensor([0, 7]))
    with pytest.raises(LabelRangeError, match=r'\[0, 8\)'):
        ntu60.validate_coarse(torch.tensor([8]))


def test_float_labels_are_not_class_indices(ntu60: LabelHierarchy) -> None:
    with pytest.raises(TypeError, match='integer'):
        ntu60.validate(torch.tensor([1.0, 2.0]))


def test_labels_from_samples_reads_both_label_styles(make_samples) -> None:
    from mmengine.structures import BaseDataElement, LabelData

    new_style = make_samples([4, 59])
    old_style = [BaseDataElement(gt_labels=LabelData(item=torch.tensor([7])))]
    assert labels_from_samples(new_style).tolist() == [4, 59]
    assert labels_from_samples(old_style).tolist() == [7]
    labels = labels_from_samples(new_style + old_style)
    assert labels.dtype == torch.long and labels.tolist() == [4, 59, 7]


def test_labels_from_samples_rejects_missing_and_multi_labels() -> None:
    from mmaction.structures import ActionDataSample

    with pytest.raises(ValueError, match='no label'):
        labels_from_samples([ActionDataSample()])
    with pytest.raises(ValueError, match='exactly one'):
        labels_from_samples([ActionDataSample().set_gt_label([1, 2])])
