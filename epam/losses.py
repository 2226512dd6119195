"""The head's two auxiliary losses: feature renovation and hierarchy consistency.

Both are MMAction2 weighted losses (``loss_weight`` scales the result), built
from config, and called with the int64 target labels as explicit arguments:

* ``FeatureRenovationLoss()(features, labels, prototypes)``: classify each
  sample's pooled features against the class-prototype memory by cosine
  similarity (temperature-scaled cross-entropy), which pulls the features
  towards their own class prototype and away from the others'.
* ``HierarchyTreeLoss()(fine_logits, coarse_logits, fine_labels, coarse_labels)``:
  keep the fine classifier's probability mass inside the true coarse group and
  make the coarse classifier agree with the fine one's summed probabilities.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmaction.models.losses.base import BaseWeightedLoss
from mmaction.registry import MODELS
from torch import Tensor

from .hierarchy import LabelHierarchy

__all__ = ['FeatureRenovationLoss', 'HierarchyTreeLoss']


def _check_targets(name: str, labels: Tensor, batch: int) -> None:
    """Targets are (B,) int64 class indices, never one-hot or float."""
    if labels.dtype != torch.long or labels.shape != (batch, ):
        raise TypeError(
            f'{name} must be a ({batch},) int64 tensor of class indices, but got '
            f'{labels.dtype} of shape {tuple(labels.shape)}')


@MODELS.register_module()
class FeatureRenovationLoss(BaseWeightedLoss):
    """Cross-entropy of cosine similarities to the class prototypes.

    ``logits[b, k] = cos(features[b], prototypes[k]) / temperature``; the loss
    is ``cross_entropy(logits, labels)``. Prototypes are a memory, not
    parameters: no gradient flows into them. A prototype still at zero (a class
    not seen yet) gives logit 0, so the loss stays finite.

    Args:
        loss_weight (float): Factor on the loss. Default: 0.5.
        temperature (float): Softmax temperature of the cosine logits. Default: 0.1.
    """

    def __init__(self, loss_weight: float = 0.5, temperature: float = 0.1) -> None:
        super().__init__(loss_weight=loss_weight)
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, but got {temperature}')
        self.temperature = temperature

    def prototype_logits(self, features: Tensor, prototypes: Tensor) -> Tensor:
        """``(B, C)`` features, ``(K, C)`` prototypes -> ``(B, K)`` scaled cosine logits."""
        features = F.normalize(features.float(), dim=1)
        prototypes = F.normalize(prototypes.detach().float(), dim=1)
        return features @ prototypes.t() / self.temperature

    def _forward(self, features: Tensor, labels: Tensor, prototypes: Tensor) -> Tensor:
        """Mean prototype cross-entropy of a batch (a finite scalar)."""
        _check_targets('FeatureRenovationLoss labels', labels, features.shape[0])
        if features.dim() != 2 or prototypes.dim() != 2 \
                or features.shape[1] != prototypes.shape[1]:
            raise ValueError(
                'FeatureRenovationLoss needs (B, C) features and (K, C) prototypes, but '
                f'got {tuple(features.shape)} and {tuple(prototypes.shape)}')
        return F.cross_entropy(self.prototype_logits(features, prototypes), labels)


@MODELS.register_module()
class HierarchyTreeLoss(BaseWeightedLoss):
    """Hierarchy consistency over the joint (coarse, fine) label space.

    With fine log-probabilities ``log p_f = log_softmax(fine_logits)``, the
    coarse distribution the fine classifier implies is
    ``q_g = sum_{f in group g} p_f``, computed in log space as
    ``log q = logsumexp(log p_f + log M)`` with the hierarchy's membership
    matrix ``M`` (fine x coarse, 0/1). With ``p_c = softmax(coarse_logits)``,
    per sample ``b``::

        loss_b = -log q_b[coarse_labels[b]]                       # group term
                 + consistency_weight * KL(p_c,b || q_b)          # agreement term

    The group term penalises fine probability mass outside the true coarse
    group (confusing two actions of one group costs less than confusing
    groups); the agreement term ties the coarse classifier to the summed fine
    probabilities. The loss is the batch mean, computed without a loop over
    samples. ``fine_labels`` must lie in the group ``coarse_labels`` names:
    a mismatch means two label mappings disagree, and is an error.

    Args:
        loss_weight (float): Factor on the loss. Default: 0.5.
        consistency_weight (float): Weight of the agreement term. Default: 1.0.
    """

    membership: Tensor

    def __init__(self, loss_weight: float = 0.5, consistency_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        self.consistency_weight = consistency_weight
        self.register_buffer('membership', torch.zeros(0, 0), persistent=False)

    def set_hierarchy(self, hierarchy: LabelHierarchy) -> None:
        """Use ``hierarchy``'s membership matrix (kept as a non-persistent buffer)."""
        device = self.membership.device
        self.membership = hierarchy.membership.to(device=device, copy=True)

    def _forward(self, fine_logits: Tensor, coarse_logits: Tensor, fine_labels: Tensor,
                 coarse_labels: Tensor) -> Tensor:
        """Mean tree loss of a batch (a finite scalar)."""
        if self.membership.numel() == 0:
            raise RuntimeError(
                'HierarchyTreeLoss has no hierarchy: call set_hierarchy() (EPAMRecognizer '
                'does this through EPAMHierarchicalHead.set_hierarchy)')
        batch = fine_logits.shape[0]
        _check_targets('HierarchyTreeLoss fine_labels', fine_labels, batch)
        _check_targets('HierarchyTreeLoss coarse_labels', coarse_labels, batch)
        membership = self.membership.to(fine_logits.device)
        if fine_logits.shape[1:] != membership.shape[:1] \
                or coarse_logits.shape != (batch, membership.shape[1]):
            raise ValueError(
                f'HierarchyTreeLoss needs ({batch}, {membership.shape[0]}) fine and '
                f'({batch}, {membership.shape[1]}) coarse logits, but got '
                f'{tuple(fine_logits.shape)} and {tuple(coarse_logits.shape)}')
        inside = membership[fine_labels, coarse_labels] > 0
        if not bool(inside.all()):
            bad = (~inside).nonzero().flatten()[:8].tolist()
            pairs = ', '.join(f'fine {int(fine_labels[i])} -> coarse '
                              f'{int(coarse_labels[i])}' for i in bad)
            raise ValueError(
                'coarse_labels disagree with the label hierarchy (two label mappings '
                f'are in use) for {int((~inside).sum())} samples: {pairs}')
        log_p_fine = F.log_softmax(fine_logits.float(), dim=1)
        log_q = torch.logsumexp(log_p_fine.unsqueeze(2) + membership.log().unsqueeze(0), dim=1)
        group_term = -log_q.gather(1, coarse_labels.unsqueeze(1)).squeeze(1)
        log_p_coarse = F.log_softmax(coarse_logits.float(), dim=1)
        agreement = (log_p_coarse.exp() * (log_p_coarse - log_q)).sum(dim=1)
        return (group_term + self.consistency_weight * agreement).mean()
