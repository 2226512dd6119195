"""EPAM-Net recognizer: routes frames, heat maps and labels between backbone and head.

Compared with MMAction2's ``MMRecognizer3D``:

* the caller's ``inputs`` dict is never modified (views are folded into the
  batch on new tensors);
* in ``loss`` mode the labels go to the *backbone*
  (``backbone(imgs, heatmap_imgs, gt, gt_coarse)``), which echoes them in its
  6-tuple for the head; in ``predict`` and ``tensor`` mode it gets
  ``gt=None, gt_coarse=None``;
* ``cls_head.loss(feats, data_samples)`` and ``cls_head.predict(feats,
  data_samples)`` get no other arguments;
* one :class:`~epam.hierarchy.LabelHierarchy`, built here from the
  ``hierarchy=`` config, makes ``gt_coarse`` and is handed to the head.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmaction.models.recognizers.base import BaseRecognizer
from mmaction.registry import MODELS
from mmaction.utils import ConfigType, OptConfigType, OptSampleList
from torch import Tensor

from .hierarchy import LabelHierarchy, labels_from_samples

__all__ = ['EPAMRecognizer']

MODALITIES = ('imgs', 'heatmap_imgs')


def _fold_views(inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, int]:
    """``(N, V, C, T, H, W)`` per modality -> ``(N*V, C, T, H, W)`` (new tensors) and V."""
    if not isinstance(inputs, Mapping) or any(k not in inputs for k in MODALITIES):
        found = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__
        raise ValueError(
            f"EPAMRecognizer takes inputs = dict(imgs=..., heatmap_imgs=...), but got "
            f'{found}')
    folded = []
    for name in MODALITIES:
        x = inputs[name]
        if not isinstance(x, Tensor) or x.dim() != 6:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f'inputs[{name!r}] must be (N, V, C, T, H, W) as MultiModalDataPreprocessor '
                f'makes it, but got {shape}')
        folded.append(x.reshape((-1, ) + tuple(x.shape[2:])))
    imgs, heatmap_imgs = inputs['imgs'], inputs['heatmap_imgs']
    if imgs.shape[:2] != heatmap_imgs.shape[:2]:
        raise ValueError(
            f'imgs and heatmap_imgs must have the same (N, V), but got '
            f'{tuple(imgs.shape[:2])} and {tuple(heatmap_imgs.shape[:2])}')
    return folded[0], folded[1], imgs.shape[1]


@MODELS.register_module()
class EPAMRecognizer(BaseRecognizer):
    """RGB + pose recognizer with a label hierarchy.

    Args:
        backbone (dict): Backbone config (``EPAMBackbone``).
        cls_head (dict): Head config (``EPAMHierarchicalHead``).
        hierarchy (dict | LabelHierarchy | None): ``dict(num_classes=...,
            groups=[[lo, hi], ...])``; None means NTU-60's 8 groups.
        neck: Not supported (the backbone's 6-tuple goes to the head); must be None.
        train_cfg, test_cfg, data_preprocessor: As in :class:`BaseRecognizer`.
    """

    def __init__(self,
                 backbone: ConfigType,
                 cls_head: ConfigType,
                 hierarchy: None | Mapping[str, Any] | LabelHierarchy = None,
                 neck: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None) -> None:
        if neck is not None:
            raise ValueError(
                "EPAMRecognizer has no neck stage: the backbone's 6-tuple goes straight "
                'to the head; remove neck from the model config')
        if cls_head is None:
            raise ValueError('EPAMRecognizer needs a cls_head (EPAMHierarchicalHead)')
        super().__init__(backbone=backbone, cls_head=cls_head, neck=None,
                         train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor)
        self.hierarchy = LabelHierarchy.build(hierarchy)
        head_sizes = (getattr(self.cls_head, 'num_classes', None),
                      getattr(self.cls_head, 'num_coarse_classes', None))
        if head_sizes != (self.hierarchy.num_classes, self.hierarchy.num_coarse_classes):
            raise ValueError(
                f'model.hierarchy has {self.hierarchy.num_classes} fine classes in '
                f'{self.hierarchy.num_coarse_classes} groups, but cls_head has '
                f'num_classes={head_sizes[0]} and num_coarse_classes={head_sizes[1]}; '
                'they must agree')
        self.cls_head.set_hierarchy(self.hierarchy)

    def extract_feat(self,
                     inputs: Mapping[str, Tensor],
                     stage: str = 'backbone',
                     data_samples: OptSampleList = None,
                     test_mode: bool = False) -> tuple[Any, dict]:
        """Backbone (or head) features, and an empty kwargs dict for the head.

        Args:
            inputs (dict[str, Tensor]): ``imgs`` (N, V, 3, T, H, W) and
                ``heatmap_imgs`` (N, V, 17, k*T, H/4, W/4). Not modified.
            stage (str): ``'backbone'`` (the 6-tuple) or ``'head'`` (the head's
                score dict). Default: ``'backbone'``.
            data_samples (list[ActionDataSample] | None): Their labels become
                ``gt`` (one per clip) and ``gt_coarse`` in loss mode.
            test_mode (bool): Predict mode: no labels reach the model.

        Returns:
            tuple: the features, and ``{}`` (the head's loss/predict get no kwargs).
        """
        imgs, heatmap_imgs, num_views = _fold_views(inputs)
        gt = gt_coarse = None
        if not test_mode and data_samples is not None:
            if len(data_samples) * num_views != imgs.shape[0]:
                raise ValueError(
                    f'got {len(data_samples)} data samples for a batch of '
                    f'{imgs.shape[0] // num_views} inputs; loss mode needs one per input')
            gt = labels_from_samples(data_samples, device=imgs.device)
            gt = gt.repeat_interleave(num_views)
            gt_coarse = self.hierarchy(gt)  # validates the range first
        feats = self.backbone(imgs, heatmap_imgs, gt, gt_coarse)
        if stage == 'backbone':
            return feats, {}
        if stage == 'head':
            return self.cls_head(feats), {}
        raise ValueError(f"stage must be 'backbone' or 'head', but got {stage!r}")
