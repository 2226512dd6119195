"""Tests of epam.losses: feature renovation and the hierarchy tree loss."""
from __future__ import annotations

import math

import pytest
import torch
from mmaction.registry import MODELS

from epam.hierarchy import LabelHierarchy
from epam.losses import FeatureRenovationLoss, HierarchyTreeLoss

SMALL = LabelHierarchy(num_classes=7, groups=[[0, 2], [3, 3], [4, 6]])


def _tree_loss(consistency_weight: float = 1.0, hierarchy: LabelHierarchy = SMALL):
    loss = HierarchyTreeLoss(loss_weight=1.0, consistency_weight=consistency_weight)
    loss.set_hierarchy(hierarchy)
    return loss


def _loop_reference(fine_logits, coarse_logits, fine_labels, coarse_labels, groups,
                    consistency_weight) -> float:
    """The tree loss written out per sample and per class, in float64 Python."""
    total = 0.0
    for b in range(fine_logits.shape[0]):
        fine = [math.exp(v) for v in fine_logits[b].tolist()]
        p_fine = [v / sum(fine) for v in fine]
        q = [sum(p_fine[f] for f in range(lo, hi + 1)) for lo, hi in groups]
        coarse = [math.exp(v) for v in coarse_logits[b].tolist()]
        p_coarse = [v / sum(coarse) for v in coarse]
        assert groups[coarse_labels[b]][0] <= fine_labels[b] <= groups[coarse_labels[b]][1]
        kl = sum(p * (math.log(p) - math.log(qg)) for p, qg in zip(p_coarse, q))
        total += -math.log(q[coarse_labels[b]]) + consistency_weight * kl
    return total / fine_logits.shape[0]


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('consistency_weight', [0.0, 1.0, 0.3])
def test_tree_loss_equals_loop_reference(seed: int, consistency_weight: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    batch = 5
    fine_logits = torch.randn(batch, 7, generator=generator) * 3
    coarse_logits = torch.randn(batch, 3, generator=generator) * 3
    fine_labels = torch.randint(0, 7, (batch, ), generator=generator)
    coarse_labels = SMALL(fine_labels)
    got = _tree_loss(consistency_weight)(fine_logits, coarse_logits, fine_labels, coarse_labels)
    expected = _loop_reference(fine_logits, coarse_logits, fine_labels.tolist(),
                               coarse_labels.tolist(), SMALL.groups, consistency_weight)
    assert got.dim() == 0
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_tree_loss_penalises_mass_outside_the_true_group() -> None:
    loss = _tree_loss(consistency_weight=0.0)
    labels, coarse = torch.tensor([0]), torch.tensor([0])
    inside = torch.tensor([[0.0, 5.0, 0.0, -5, -5, -5, -5]])   # wrong fine class, right group
    outside = torch.tensor([[0.0, -5, -5, 5.0, -5, -5, -5]])   # wrong group
    flat = torch.zeros(1, 3)
    assert loss(inside, flat, labels, coarse) < loss(outside, flat, labels, coarse)


def test_tree_loss_is_finite_for_extreme_logits_and_has_gradients() -> None:
    loss = _tree_loss()
    fine = torch.tensor([[80.0, -80, 0, 0, 0, -80, 80]] * 2, requires_grad=True)
    coarse = torch.tensor([[-90.0, 0, 90]] * 2, requires_grad=True)
    value = loss(fine, coarse, torch.tensor([1, 3]), torch.tensor([0, 1]))
    value.backward()
    assert torch.isfinite(value)
    assert fine.grad is not None and coarse.grad is not None
    assert torch.isfinite(fine.grad).all() and torch.isfinite(coarse.grad).all()


def test_tree_loss_rejects_labels_from_another_mapping() -> None:
    loss = _tree_loss()
    with pytest.raises(ValueError, match=r'fine 3 -> coarse 0'):
        loss(torch.zeros(2, 7), torch.zeros(2, 3), torch.tensor([0, 3]), torch.tensor([0, 0]))


def test_tree_loss_needs_a_hierarchy_and_index_targets() -> None:
    with pytest.raises(RuntimeError, match='set_hierarchy'):
        HierarchyTreeLoss()(torch.zeros(1, 7), torch.zeros(1, 3), torch.tensor([0]),
                            torch.tensor([0]))
    with pytest.raises(TypeError, match='int64'):
        _tree_loss()(torch.zeros(1, 7), torch.zeros(1, 3), torch.zeros(1, 7), torch.tensor([0]))


def test_tree_loss_membership_is_not_checkpointed() -> None:
    loss = _tree_loss()
    assert 'membership' not in loss.state_dict()
    assert torch.equal(loss.membership, SMALL.membership)
    assert loss.membership is not SMALL.membership


def test_fr_loss_is_finite_for_unseen_classes_and_zero_features() -> None:
    loss = FeatureRenovationLoss(loss_weight=1.0)
    features = torch.zeros(3, 5, requires_grad=True)
    prototypes = torch.zeros(4, 5)  # nothing seen yet
    value = loss(features, torch.tensor([0, 3, 3]), prototypes)
    value.backward()
    assert torch.isfinite(value) and value.item() == pytest.approx(math.log(4))
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_fr_loss_pulls_towards_own_prototype() -> None:
    loss = FeatureRenovationLoss(loss_weight=1.0, temperature=0.1)
    prototypes = torch.eye(3)
    labels = torch.tensor([1])
    near = loss(torch.tensor([[0.1, 1.0, 0.0]]), labels, prototypes)
    far = loss(torch.tensor([[1.0, 0.1, 0.0]]), labels, prototypes)
    assert near < far
    features = torch.tensor([[1.0, 0.5, 0.0]], requires_grad=True)
    loss(features, labels, prototypes).backward()
    assert features.grad is not None
    assert features.grad[0, 1] < 0 < features.grad[0, 0]  # descent raises the own-class dim


def test_fr_loss_does_not_train_the_prototypes() -> None:
    prototypes = torch.randn(4, 5, requires_grad=True)
    FeatureRenovationLoss()(torch.randn(2, 5, requires_grad=True), torch.tensor([1, 2]),
                            prototypes).backward()
    assert prototypes.grad is None


def test_loss_weight_scales_both_losses() -> None:
    features, labels, prototypes = torch.randn(2, 5), torch.tensor([0, 1]), torch.randn(3, 5)
    one = FeatureRenovationLoss(loss_weight=1.0)(features, labels, prototypes)
    half = FeatureRenovationLoss(loss_weight=0.5)(features, labels, prototypes)
    assert half.item() == pytest.approx(0.5 * one.item())
    fine, coarse = torch.randn(2, 7), torch.randn(2, 3)
    tree_one = _tree_loss()(fine, coarse, torch.tensor([0, 4]), torch.tensor([0, 2]))
    tree = HierarchyTreeLoss(loss_weight=0.25)
    tree.set_hierarchy(SMALL)
    assert tree(fine, coarse, torch.tensor([0, 4]), torch.tensor([0, 2])).item() == \
        pytest.approx(0.25 * tree_one.item())


def test_losses_are_registered_and_named_loss() -> None:
    for name in ('FeatureRenovationLoss', 'HierarchyTreeLoss'):
        module = MODELS.build(dict(type=name))
        assert type(module).__name__.endswith('Loss')
