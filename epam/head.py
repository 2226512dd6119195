"""The hierarchical RGB + pose classification head of EPAM-Net.

:class:`EPAMHierarchicalHead` reads the backbone's 6-tuple
``(x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse)``:

* ``forward`` pools ``x_rgb`` and ``x_pose`` and returns fine and coarse logits
  per stream under the keys ``'rgb'``, ``'pose'``, ``'rgb_coarse'``,
  ``'pose_coarse'``. In training (with labels in the tuple) it also adds the
  auxiliary losses ``'{rgb,pose}{,_coarse}_loss_fr'`` (feature renovation of the
  pooled ``x_rgb1``/``x_pose1`` against class-prototype memories) and
  ``'{rgb,pose}_loss_tree'`` (hierarchy consistency). In eval it never reads
  the labels; with ``rectify_weight > 0`` it adds prototype logits to the fine
  logits.
* ``loss`` adds the four weighted classification losses and top-k accuracies.
* ``predict`` averages clips and sets ``pred_score = {'rgb': ..., 'pose': ...}``
  (exactly those keys: MMAction2's ``AccMetric`` then reports
  ``acc/RGBPose_1:1_top1``), plus ``pred_coarse_score`` with the same keys.

Prototype memories are buffers ``{rgb,pose}_prototypes`` (num_classes x C) and
``{rgb,pose}_coarse_prototypes`` (num_coarse_classes x C): exponential moving
averages of each class's mean L2-normalised feature, updated only in training.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmaction.models.heads.base import BaseHead
from mmaction.registry import MODELS
from mmaction.utils import SampleList
from mmengine.model.weight_init import normal_init
from torch import Tensor, nn

from .hierarchy import LabelHierarchy, labels_from_samples

__all__ = ['EPAMHierarchicalHead']

STREAMS = ('rgb', 'pose')
SCORE_KEYS = ('rgb', 'pose', 'rgb_coarse', 'pose_coarse')
FEATS_LAYOUT = '(x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse)'


def _topk_accuracy(scores: Tensor, labels: Tensor, k: int) -> Tensor:
    """Fraction of rows whose label is among the ``k`` highest scores (on scores' device)."""
    k = min(k, scores.shape[1])
    hits = (scores.detach().topk(k, dim=1).indices == labels.unsqueeze(1)).any(dim=1)
    return hits.float().mean()


def _reject_kwargs(method: str, kwargs: Mapping[str, Any]) -> None:
    """The head's loss/predict take no keyword arguments (CONTRACT.md section 2)."""
    if kwargs:
        raise TypeError(
            f'EPAMHierarchicalHead.{method}() takes only (feats, data_samples), but got '
            f'keyword arguments {sorted(kwargs)}. Labels reach the head inside the '
            f"backbone's 6-tuple {FEATS_LAYOUT} (CONTRACT.md section 2).")


@MODELS.register_module()
class EPAMHierarchicalHead(BaseHead):
    """Fine + coarse classifiers per stream, with feature-renovation and tree losses.

    Args:
        num_classes (int): Fine classes.
        in_channels (Sequence[int]): Channels of ``x_rgb`` and ``x_pose``.
        num_coarse_classes (int): Coarse classes. Default: 8.
        loss_cls (dict): Classification loss, called as
            ``loss_cls(scores, labels)``. Default: ``CrossEntropyLoss``.
        loss_fr (dict): Feature-renovation loss, called as
            ``loss_fr(features, labels, prototypes)``. Default:
            ``FeatureRenovationLoss`` (weight 0.5, temperature 0.1).
        loss_tree (dict): Hierarchy loss, called as ``loss_tree(fine_logits,
            coarse_logits, fine_labels, coarse_labels)``. Default:
            ``HierarchyTreeLoss`` (weight 0.5).
        loss_components (Sequence[str]): Which of ``'rgb'``, ``'pose'``,
            ``'rgb_coarse'``, ``'pose_coarse'`` get a classification loss.
        loss_weights (float | Sequence[float]): Their weights.
        dropout (float | dict): Dropout before the classifiers, one value or
            ``{'rgb': p, 'pose': p}``. Default: 0.5.
        init_std (float): Std of the classifiers' normal init. Default: 0.01.
        fr_momentum (float): Prototype EMA momentum, in [0, 1). Default: 0.9.
        rectify_weight (float): Weight of the prototype logits added to the
            fine logits at inference; 0 disables (the default: the linear
            classifiers alone decide until a validation run shows it helps).
        **kwargs: :class:`BaseHead` options (``topk``, ``average_clips``, ``init_cfg``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int],
                 num_coarse_classes: int = 8,
                 loss_cls: dict = dict(type='CrossEntropyLoss'),  # noqa: B006
                 loss_fr: dict = dict(type='FeatureRenovationLoss'),  # noqa: B006
                 loss_tree: dict = dict(type='HierarchyTreeLoss'),  # noqa: B006
                 loss_components: Sequence[str] = SCORE_KEYS,
                 loss_weights: float | Sequence[float] = (1.0, 1.2, 0.5, 0.9),
                 dropout: float | Mapping[str, float] = 0.5,
                 init_std: float = 0.01,
                 fr_momentum: float = 0.9,
                 rectify_weight: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(num_classes, in_channels, loss_cls, **kwargs)
        if self.multi_class or self.label_smooth_eps:
            raise ValueError(
                'EPAMHierarchicalHead trains on int64 class indices: multi_class and '
                'label_smooth_eps are not supported')
        if len(in_channels) != 2:
            raise ValueError(
                f'in_channels must give the channels of x_rgb and x_pose, but got '
                f'{in_channels!r}')
        unknown = sorted(set(loss_components) - set(SCORE_KEYS))
        if unknown:
            raise ValueError(
                f'loss_components must be taken from {list(SCORE_KEYS)}, but got {unknown}')
        if isinstance(loss_weights, (int, float)):
            loss_weights = [float(loss_weights)] * len(loss_components)
        if len(loss_weights) != len(loss_components):
            raise ValueError(
                f'loss_weights needs one weight per loss component '
                f'({list(loss_components)}), but got {list(loss_weights)}')
        if not 0 <= fr_momentum < 1:
            raise ValueError(f'fr_momentum must be in [0, 1), but got {fr_momentum}')
        if isinstance(dropout, (int, float)):
            dropout = {'rgb': float(dropout), 'pose': float(dropout)}
        self.num_coarse_classes = num_coarse_classes
        self.loss_components = tuple(loss_components)
        self.loss_weights = tuple(float(w) for w in loss_weights)
        self.dropout = dict(dropout)
        self.init_std = init_std
        self.fr_momentum = fr_momentum
        self.rectify_weight = rectify_weight
        self.hierarchy: LabelHierarchy | None = None

        self.loss_fr = MODELS.build(loss_fr)
        self.loss_tree = MODELS.build(loss_tree)
        self.dropout_rgb = nn.Dropout(p=self.dropout['rgb'])
        self.dropout_pose = nn.Dropout(p=self.dropout['pose'])
        self.fc_rgb = nn.Linear(in_channels[0], num_classes)
        self.fc_pose = nn.Linear(in_channels[1], num_classes)
        self.fc_rgb_coarse = nn.Linear(in_channels[0], num_coarse_classes)
        self.fc_pose_coarse = nn.Linear(in_channels[1], num_coarse_classes)
        for stream, channels in zip(STREAMS, in_channels):
            # zeros mark "not seen yet"; see _update_prototypes
            self.register_buffer(f'{stream}_prototypes', torch.zeros(num_classes, channels))
            self.register_buffer(f'{stream}_coarse_prototypes',
                                 torch.zeros(num_coarse_classes, channels))

    # ------------------------------------------------------------ setup
    def set_hierarchy(self, hierarchy: LabelHierarchy) -> None:
        """Use ``hierarchy`` for label checks and the tree loss (the recognizer's one copy)."""
        if (hierarchy.num_classes, hierarchy.num_coarse_classes) != \
                (self.num_classes, self.num_coarse_classes):
            raise ValueError(
                f'the label hierarchy has {hierarchy.num_classes} fine and '
                f'{hierarchy.num_coarse_classes} coarse classes, but the head was built '
                f'for num_classes={self.num_classes} and num_coarse_classes='
                f'{self.num_coarse_classes}')
        self.hierarchy = hierarchy
        self.loss_tree.set_hierarchy(hierarchy)

    def init_weights(self) -> None:
        """Normal init of the four classifiers (the prototypes stay at zero)."""
        for fc in (self.fc_rgb, self.fc_pose, self.fc_rgb_coarse, self.fc_pose_coarse):
            normal_init(fc, std=self.init_std)

    def _require_hierarchy(self) -> LabelHierarchy:
        if self.hierarchy is None:
            raise RuntimeError(
                'EPAMHierarchicalHead has no label hierarchy: call set_hierarchy() '
                '(EPAMRecognizer does this when it is built)')
        return self.hierarchy

    # ------------------------------------------------------------ helpers
    def _check_feats(self, x: Sequence[Any]) -> None:
        """``x`` is the backbone's 6-tuple with the configured channel counts."""
        if not isinstance(x, (tuple, list)) or len(x) != 6:
            found = f'a {type(x).__name__} of length {len(x)}' if isinstance(
                x, (tuple, list)) else f'a {type(x).__name__}'
            raise ValueError(
                f"EPAMHierarchicalHead reads the backbone's 6-tuple {FEATS_LAYOUT}, "
                f'but got {found} (CONTRACT.md section 3)')
        for index, name, channels in ((0, 'x_rgb', self.in_channels[0]),
                                      (1, 'x_pose', self.in_channels[1]),
                                      (2, 'x_rgb1', self.in_channels[0]),
                                      (3, 'x_pose1', self.in_channels[1])):
            feat = x[index]
            if not isinstance(feat, Tensor) or feat.dim() < 2 or feat.shape[1] != channels:
                shape = tuple(feat.shape) if isinstance(feat, Tensor) else type(feat).__name__
                raise ValueError(
                    f'feats[{index}] ({name}) must be an (N, {channels}, ...) tensor, but '
                    f'got {shape}')

    @staticmethod
    def _pool(x: Tensor) -> Tensor:
        """Global average pool ``(N, C, ...)`` -> ``(N, C)``."""
        return x.flatten(2).mean(dim=2)

    @torch.no_grad()
    def _update_prototypes(self, prototypes: Tensor, features: Tensor, labels: Tensor) -> None:
        """EMA of each class's mean normalised feature, in place, for classes in the batch.

        A class seen for the first time (prototype still zero) takes the batch
        mean directly; classes absent from the batch keep their prototype.
        """
        features = F.normalize(features.detach().float(), dim=1)
        sums = torch.zeros_like(prototypes).index_add_(0, labels, features)
        counts = torch.zeros(prototypes.shape[0], device=prototypes.device).index_add_(
            0, labels, torch.ones_like(labels, dtype=torch.float))
        present = (counts > 0).unsqueeze(1)
        means = sums / counts.clamp(min=1).unsqueeze(1)
        seen = prototypes.ne(0).any(dim=1, keepdim=True)
        blended = torch.where(seen, self.fr_momentum * prototypes
                              + (1 - self.fr_momentum) * means, means)
        prototypes.copy_(torch.where(present, blended, prototypes))

    def _auxiliary_losses(self, x: Sequence[Any], scores: Mapping[str, Tensor],
                          update_prototypes: bool) -> dict[str, Tensor]:
        """FR losses (fine and coarse per stream) and tree losses from ``x[2]..x[5]``."""
        hierarchy = self._require_hierarchy()
        gt, gt_coarse = x[4], x[5]
        if gt is None or gt_coarse is None:
            raise ValueError(
                f'the auxiliary losses need gt and gt_coarse in feats[4] and feats[5] of '
                f'{FEATS_LAYOUT}, but got {type(gt).__name__} and '
                f'{type(gt_coarse).__name__}')
        hierarchy.validate(gt)
        hierarchy.validate_coarse(gt_coarse)
        losses = {}
        for stream, feat in zip(STREAMS, (x[2], x[3])):
            pooled = self._pool(feat)
            for level, labels in (('', gt), ('_coarse', gt_coarse)):
                prototypes = getattr(self, f'{stream}{level}_prototypes')
                if update_prototypes:
                    self._update_prototypes(prototypes, pooled, labels)
                losses[f'{stream}{level}_loss_fr'] = self.loss_fr(pooled, labels, prototypes)
            losses[f'{stream}_loss_tree'] = self.loss_tree(
                scores[stream], scores[f'{stream}_coarse'], gt, gt_coarse)
        return losses

    # ------------------------------------------------------------ forward
    def forward(self, x: Sequence[Any]) -> dict[str, Tensor]:
        """Logits per stream and level; in training also the FR and tree losses.

        Args:
            x (tuple): The backbone's 6-tuple ``(x_rgb, x_pose, x_rgb1,
                x_pose1, gt, gt_coarse)``.

        Returns:
            dict[str, Tensor]: ``'rgb'``, ``'pose'`` (N, num_classes) and
            ``'rgb_coarse'``, ``'pose_coarse'`` (N, num_coarse_classes); in
            training mode with labels in ``x`` also ``'rgb_loss_fr'``,
            ``'pose_loss_fr'``, ``'rgb_coarse_loss_fr'``,
            ``'pose_coarse_loss_fr'``, ``'rgb_loss_tree'``, ``'pose_loss_tree'``.
        """
        self._check_feats(x)
        rgb = self.dropout_rgb(self._pool(x[0]))
        pose = self.dropout_pose(self._pool(x[1]))
        scores = {
            'rgb': self.fc_rgb(rgb),
            'pose': self.fc_pose(pose),
            'rgb_coarse': self.fc_rgb_coarse(rgb),
            'pose_coarse': self.fc_pose_coarse(pose),
        }
        if self.training:
            if x[4] is not None:
                scores.update(self._auxiliary_losses(x, scores, update_prototypes=True))
        elif self.rectify_weight:
            for stream, feat in zip(STREAMS, (x[2], x[3])):
                prototypes = getattr(self, f'{stream}_prototypes')
                scores[stream] = scores[stream] + self.rectify_weight * \
                    self.loss_fr.prototype_logits(self._pool(feat), prototypes)
        return scores

    # ------------------------------------------------------------ loss
    def loss(self, feats: Sequence[Any], data_samples: SampleList, **kwargs: Any) -> dict:
        """Classification, FR and tree losses plus top-k accuracies.

        Fine labels come from ``data_samples`` (``gt_label``, or
        ``gt_labels.item``), repeated per clip; coarse labels from ``feats[5]``.

        Returns:
            dict[str, Tensor]: ``{rgb,pose,rgb_coarse,pose_coarse}_loss_cls``
            (each times its loss weight), ``{rgb,pose}{,_coarse}_loss_fr``,
            ``{rgb,pose}_loss_tree``, ``{rgb,pose}_top{k}_acc`` and
            ``{rgb,pose}_coarse_top1_acc``.
        """
        _reject_kwargs('loss', kwargs)
        hierarchy = self._require_hierarchy()
        self._check_feats(feats)
        gt, gt_coarse = feats[4], feats[5]
        if gt is None or gt_coarse is None:
            raise ValueError(
                f'EPAMHierarchicalHead.loss needs the labels in feats[4] (gt) and feats[5] '
                f'(gt_coarse) of {FEATS_LAYOUT}, but they are None: in loss mode the '
                'recognizer must pass them to the backbone (CONTRACT.md section 2)')
        labels = labels_from_samples(data_samples, device=feats[0].device)
        num_clips = feats[0].shape[0]
        if num_clips % labels.numel():
            raise ValueError(
                f'{num_clips} clips cannot be split evenly among {labels.numel()} data '
                'samples')
        labels = labels.repeat_interleave(num_clips // labels.numel())
        hierarchy.validate(labels)
        if gt.shape != labels.shape or not torch.equal(gt.to(labels.device), labels):
            raise ValueError(
                'the labels in feats[4] differ from those of the data samples: the '
                'recognizer must build gt from the same data samples, one per clip')

        scores = self(feats)
        if 'rgb_loss_fr' not in scores:  # head in eval mode: no prototype update
            scores.update(self._auxiliary_losses(feats, scores, update_prototypes=False))
        losses = {}
        for name, weight in zip(self.loss_components, self.loss_weights):
            target = gt_coarse if name.endswith('_coarse') else labels
            losses[f'{name}_loss_cls'] = self.loss_cls(scores[name], target) * weight
        losses.update({k: v for k, v in scores.items() if 'loss' in k})
        for stream in STREAMS:
            for k in self.topk:
                losses[f'{stream}_top{k}_acc'] = _topk_accuracy(scores[stream], labels, k)
            losses[f'{stream}_coarse_top1_acc'] = _topk_accuracy(
                scores[f'{stream}_coarse'], gt_coarse, 1)
        return losses

    def loss_by_feat(self, cls_scores: Any, data_samples: SampleList) -> dict:
        """Not available: the coarse targets live in the features; use :meth:`loss`."""
        raise NotImplementedError(
            'EPAMHierarchicalHead computes its losses in loss(feats, data_samples): the '
            'coarse labels and FR features come from the backbone 6-tuple')

    # ------------------------------------------------------------ predict
    def predict(self, feats: Sequence[Any], data_samples: SampleList,
                **kwargs: Any) -> SampleList:
        """Per-sample clip-averaged scores (see :meth:`predict_by_feat`)."""
        _reject_kwargs('predict', kwargs)
        return self.predict_by_feat(self(feats), data_samples)

    def predict_by_feat(self, cls_scores: Mapping[str, Tensor],
                        data_samples: SampleList) -> SampleList:
        """Average clips and store the scores in the data samples.

        Sets ``pred_score = {'rgb': (num_classes,), 'pose': (num_classes,)}``,
        ``pred_coarse_score`` with the same keys over the coarse classes, and
        ``pred_label``, the argmax of the 1:1 sum of the two fine scores.
        """
        num_segs = cls_scores['rgb'].shape[0] // len(data_samples)
        averaged = {name: self.average_clip(cls_scores[name].detach(), num_segs=num_segs)
                    for name in SCORE_KEYS}
        pred_labels = (averaged['rgb'] + averaged['pose']).argmax(dim=-1, keepdim=True)
        for i, data_sample in enumerate(data_samples):
            data_sample.set_pred_score({'rgb': averaged['rgb'][i], 'pose': averaged['pose'][i]})
            data_sample.set_field(
                {'rgb': averaged['rgb_coarse'][i], 'pose': averaged['pose_coarse'][i]},
                'pred_coarse_score')
            data_sample.set_pred_label(pred_labels[i])
        return data_samples
