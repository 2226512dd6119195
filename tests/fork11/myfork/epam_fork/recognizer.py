"""The fork's recognizer: labels from ``gt_labels.item`` into the backbone, as 1.1 forks do."""
from __future__ import annotations

from typing import Any

import torch
from mmaction.models.recognizers import BaseRecognizer
from mmaction.registry import MODELS

from .hierarchy import COARSE_OF_FINE

#: Planted defects (``model.defect=...``).
DEFECTS = ('loss_kwargs',)


@MODELS.register_module(name='EPAMRecognizer')
class ForkRecognizer(BaseRecognizer):
    """Folds views into the batch, sends ``gt``/``gt_coarse`` to the backbone in loss mode.

    ``defect='loss_kwargs'``: the labels also go to ``cls_head.loss`` as keyword
    arguments (the failure the contract was written after).
    """

    def __init__(self, *args: Any, defect: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if defect not in (None, *DEFECTS):
            raise ValueError(f'unknown defect {defect!r}; choose from {DEFECTS}')
        self.defect = defect
        self.register_buffer('coarse_of_fine', torch.tensor(COARSE_OF_FINE), persistent=False)

    def extract_feat(self, inputs: dict, stage: str = 'backbone', data_samples: Any = None,
                     test_mode: bool = False) -> tuple[Any, dict]:
        imgs, heatmaps = inputs['imgs'], inputs['heatmap_imgs']
        views = imgs.shape[1]
        imgs = imgs.reshape((-1,) + imgs.shape[2:])
        heatmaps = heatmaps.reshape((-1,) + heatmaps.shape[2:])
        gt = gt_coarse = None
        if not test_mode and data_samples is not None:
            gt = torch.cat([sample.gt_labels.item for sample in data_samples])
            gt = gt.to(imgs.device).long().repeat_interleave(views)
            bad = gt[(gt < 0) | (gt >= len(COARSE_OF_FINE))]
            if bad.numel():
                raise ValueError(f'labels {bad.tolist()} are outside [0, {len(COARSE_OF_FINE)})')
            gt_coarse = self.coarse_of_fine[gt]
        feats = self.backbone(imgs, heatmaps, gt, gt_coarse)
        if stage == 'head':
            return self.cls_head(feats), {}
        if self.defect == 'loss_kwargs' and gt is not None:
            return feats, {'gt': gt, 'gt_coarse': gt_coarse}
        return feats, {}
