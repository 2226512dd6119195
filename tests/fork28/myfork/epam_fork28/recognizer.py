"""The fork's recognizer: labels into the backbone (in every mode, when told to leak)."""
from __future__ import annotations

from typing import Any

from mmaction.models.recognizers import BaseRecognizer
from mmaction.registry import MODELS

from .labels import fine_labels


@MODELS.register_module()
class Fork28Recognizer(BaseRecognizer):
    """Folds views into the batch and sends ``gt``/``gt_coarse`` to the backbone in loss mode.

    The fork has no hierarchy argument: the coarse labels come from the head's
    own table (``cls_head.coarse_of_fine``). ``leak_labels=True`` sends them in
    ``predict`` and ``tensor`` mode too.
    """

    def __init__(self, *args: Any, leak_labels: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leak_labels = leak_labels

    def extract_feat(self, inputs: dict, stage: str = 'backbone', data_samples: Any = None,
                     test_mode: bool = False) -> tuple[Any, dict]:
        views = inputs['imgs'].shape[1]
        imgs, heatmaps = (inputs[key].flatten(0, 1) for key in ('imgs', 'heatmap_imgs'))
        gt = gt_coarse = None
        if (self.leak_labels or not test_mode) and data_samples is not None:
            gt = fine_labels(data_samples).to(imgs.device).repeat_interleave(views)
            table = self.cls_head.coarse_of_fine
            if bool(((gt < 0) | (gt >= table.numel())).any()):
                raise ValueError(f'labels {gt.tolist()} are outside [0, {table.numel()})')
            gt_coarse = table[gt]
        feats = self.backbone(imgs, heatmaps, gt, gt_coarse)
        if stage == 'head':
            return self.cls_head(feats), {}
        return feats, {}

    # The fork hands its data samples to extract_feat in every mode (MMAction2's own
    # predict and tensor passes drop them); extract_feat decides what reaches the backbone.
    def predict(self, inputs: dict, data_samples: list, **kwargs: Any) -> list:
        feats, predict_kwargs = self.extract_feat(inputs, data_samples=data_samples,
                                                  test_mode=True)
        return self.cls_head.predict(feats, data_samples, **predict_kwargs)

    def _forward(self, inputs: dict, stage: str = 'backbone', data_samples: Any = None,
                 **kwargs: Any) -> Any:
        feats, _ = self.extract_feat(inputs, stage=stage, data_samples=data_samples,
                                     test_mode=True)
        return feats
