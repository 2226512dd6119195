"""Deliberately broken variants of a generic MMAction2 recognizer, under test-only names.

The model is MMAction2's own ``MMRecognizer3D`` with ``RGBPoseHead`` on a
tiny two-stream backbone (``configs/tiny_rgbpose.py``): a correct recognizer
judged by the ``mmaction2`` contract profile. Each variant below is a small
subclass of an MMAction2 part with one defect of the family every recognizer
can have; ``GENERIC_BROKEN`` maps a defect to the ``--cfg-options`` that
select it. Importing this module registers them (once).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from epam_guard.model.context import make_mmaction_importable

make_mmaction_importable()  # the MMAction2 wheel's missing package, before its models

from mmaction.models.heads import RGBPoseHead, TSNHead  # noqa: E402
from mmaction.models.recognizers import MMRecognizer3D, Recognizer2D  # noqa: E402
from mmaction.registry import MODELS  # noqa: E402

#: The tiny generic configs the variants plug into: RGB + pose (MMRecognizer3D) and RGB
#: segments (Recognizer2D).
TINY_RGBPOSE = Path(__file__).parent / 'configs' / 'tiny_rgbpose.py'
TINY_TSN = Path(__file__).parent / 'configs' / 'tiny_tsn.py'


def _register(cls: type) -> type:
    if cls.__name__ not in MODELS.module_dict:
        MODELS.register_module(module=cls)
    return cls


def _labels(data_samples: list[Any], device: torch.device) -> torch.Tensor:
    return torch.stack([sample.gt_label for sample in data_samples]).reshape(-1).to(device)


@_register
class GuardTinyRGBPoseBackbone(nn.Module):
    """Two 3-D conv streams (RGB and heat maps), each with BatchNorm; ``(x_rgb, x_pose)``
    as ``RGBPoseConv3D`` returns them."""

    def __init__(self, width: int = 8, pose_in_channels: int = 17) -> None:
        super().__init__()
        self.rgb_path = nn.Sequential(nn.Conv3d(3, width, 3, stride=(1, 4, 4), padding=1),
                                      nn.BatchNorm3d(width), nn.ReLU())
        self.pose_path = nn.Sequential(
            nn.Conv3d(pose_in_channels, width, 3, stride=(1, 2, 2), padding=1),
            nn.BatchNorm3d(width), nn.ReLU())

    def init_weights(self) -> None:
        """Nothing to load: PyTorch's own initialisation."""

    def forward(self, imgs: torch.Tensor, heatmap_imgs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.rgb_path(imgs), self.pose_path(heatmap_imgs)


@_register
class GuardTinyBackbone2D(nn.Module):
    """One 2-D convolution with BatchNorm: ``(N*segments, C, H, W)`` frames to features."""

    def __init__(self, width: int = 8, in_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=4, padding=1),
                                  nn.BatchNorm2d(width), nn.ReLU())

    def init_weights(self) -> None:
        """Nothing to load: PyTorch's own initialisation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ------------------------------------------------------------ labels (CONTRACT §5)
class RemapsLabels:
    """Shifts every label by one class before the loss (a 1-based annotation 'fixed' in
    the head): the model trains on the neighbouring class. Mixed into a head."""

    num_classes: int

    def loss_by_feat(self, cls_scores, data_samples):
        shifted = [sample.clone() for sample in data_samples]
        for sample in shifted:
            sample.set_gt_label((int(sample.gt_label) + 1) % self.num_classes)
        return super().loss_by_feat(cls_scores, shifted)  # type: ignore[misc]


@_register
class GuardTestRemappingRGBPoseHead(RemapsLabels, RGBPoseHead):
    """RGBPoseHead that shifts its labels."""


@_register
class GuardTestRemappingTSNHead(RemapsLabels, TSNHead):
    """TSNHead that shifts its labels."""


# ------------------------------------------------------------ routing (CONTRACT §2)
@_register
class GuardTestLabelsAsKwargsRecognizer(MMRecognizer3D):
    """Returns the labels as keyword arguments for the head, which
    ``BaseRecognizer.loss`` passes on to ``cls_head.loss``."""

    def extract_feat(self, inputs, stage='backbone', data_samples=None, test_mode=False):
        feats, _ = super().extract_feat(inputs, stage, data_samples, test_mode)
        if test_mode or data_samples is None:
            return feats, {}
        return feats, dict(labels=_labels(data_samples, feats[0].device))


@_register
class GuardTestKwargsRGBPoseHead(RGBPoseHead):
    """Accepts (and ignores) whatever keyword arguments reach its ``forward``."""

    def forward(self, x, **kwargs):
        return super().forward(x)


@_register
class GuardTestLabelsToBackboneRecognizer(MMRecognizer3D):
    """Hands the labels to the backbone in loss mode (EPAM's routing, in a generic model)."""

    def extract_feat(self, inputs, stage='backbone', data_samples=None, test_mode=False):
        if test_mode or data_samples is None:
            return super().extract_feat(inputs, stage, data_samples, test_mode)
        flat = {key: value.reshape((-1,) + value.shape[2:]) for key, value in inputs.items()}
        labels = _labels(data_samples, flat['imgs'].device)
        return self.backbone(**flat, labels=labels), {}


@_register
class GuardTestLabelTakingBackbone(GuardTinyRGBPoseBackbone):
    """Takes an optional ``labels`` argument (and ignores it)."""

    def forward(self, imgs, heatmap_imgs, labels=None):
        return super().forward(imgs, heatmap_imgs)


# ------------------------------------------------------------ label-blind (CONTRACT §7)
class MasksByLabels:
    """At inference, keeps only the scores of the classes near each sample's ground truth
    (ten around it), read from the data samples: validation accuracy is then near 100%.
    Mixed into a head (scores a tensor, or a dict of them)."""

    num_classes: int

    def predict_by_feat(self, cls_scores, data_samples):
        scores = cls_scores if isinstance(cls_scores, dict) else {'': cls_scores}
        first = next(iter(scores.values()))
        labels = _labels(data_samples, first.device)
        clips = first.shape[0] // len(data_samples)
        classes = torch.arange(self.num_classes, device=labels.device)
        near = (classes[None] - labels.repeat_interleave(clips)[:, None]).abs() < 5
        masked = {key: value.masked_fill(~near, -1e4) for key, value in scores.items()}
        return super().predict_by_feat(  # type: ignore[misc]
            masked if isinstance(cls_scores, dict) else masked[''], data_samples)


@_register
class GuardTestLabelMaskingRGBPoseHead(MasksByLabels, RGBPoseHead):
    """RGBPoseHead whose predictions read the labels."""


@_register
class GuardTestLabelMaskingTSNHead(MasksByLabels, TSNHead):
    """TSNHead whose predictions read the labels."""


# ------------------------------------------------------------ predictions (CONTRACT §4)
@_register
class GuardTestPerClipRGBPoseHead(RGBPoseHead):
    """Writes one prediction per clip (views not averaged), as a head that skips
    ``average_clip`` does."""

    def predict_by_feat(self, cls_scores, data_samples):
        clips = next(iter(cls_scores.values())).shape[0]
        samples = [data_samples[i // (clips // len(data_samples))].clone() for i in range(clips)]
        for index, sample in enumerate(samples):
            sample.set_pred_score({key: value[index] for key, value in cls_scores.items()})
        return samples


@_register
class GuardTestPerClipTSNHead(TSNHead):
    """Writes one prediction per segment (the consensus skipped at inference)."""

    def predict(self, feats, data_samples, **kwargs):
        scores = self.fc_cls(self.avg_pool(feats).flatten(1))  # one row per segment
        segments = scores.shape[0] // len(data_samples)
        samples = [data_samples[i // segments].clone() for i in range(scores.shape[0])]
        for sample, score in zip(samples, scores):
            sample.set_pred_score(score)
        return samples


# ------------------------------------------------------------ state (CONTRACT §6)
@_register
class GuardTestUnusedBranchRGBPoseHead(RGBPoseHead):
    """Builds a third classifier that no score or loss uses (DDP stops on it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fc_fused = nn.Linear(self.in_channels[0] + self.in_channels[1], self.num_classes)


class TrainsBatchNorm:
    """Puts its BatchNorm layers into training mode in every forward (a 'fix' for small
    batches), so inference updates their running statistics. Mixed into a backbone."""

    def forward(self, *args, **kwargs):
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()
        return super().forward(*args, **kwargs)  # type: ignore[misc]


class FreezesPart:
    """Freezes the child named by ``frozen`` at build time, which the config does not ask
    for. Mixed into a backbone."""

    frozen: str

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for parameter in getattr(self, self.frozen).parameters():
            parameter.requires_grad_(False)


@_register
class GuardTestTrainBatchNormBackbone(TrainsBatchNorm, GuardTinyRGBPoseBackbone):
    """The two-stream backbone, its BatchNorm trained at inference."""


@_register
class GuardTestLazyRGBPoseHead(RGBPoseHead):
    """Makes an extra classifier in its first forward (sized from the features)."""

    def forward(self, x, **kwargs):
        scores = super().forward(x)
        if not hasattr(self, 'fc_late'):
            self.fc_late = nn.Linear(x[0].shape[1], self.num_classes).to(x[0].device)
        pooled = self.avg_pool(x[0]).flatten(1)
        scores['rgb'] = scores['rgb'] + self.fc_late(pooled)
        return scores


@_register
class GuardTestFrozenPosePathBackbone(FreezesPart, GuardTinyRGBPoseBackbone):
    """The two-stream backbone with its pose stream frozen."""

    frozen = 'pose_path'


# ------------------------------------------------------------ the same on Recognizer2D
@_register
class GuardTestLabelsAsKwargsRecognizer2D(Recognizer2D):
    """Adds the labels to the keyword arguments (``num_segs``) it returns for the head,
    which ``BaseRecognizer.loss`` passes on to ``cls_head.loss`` and TSNHead's ``forward``
    accepts."""

    def extract_feat(self, inputs, stage='neck', data_samples=None, test_mode=False):
        feats, kwargs = super().extract_feat(inputs, stage, data_samples, test_mode)
        if test_mode or data_samples is None:
            return feats, kwargs
        return feats, {**kwargs, 'labels': _labels(data_samples, feats.device)}


@_register
class GuardTestUnusedBranchTSNHead(TSNHead):
    """Builds a second classifier that no score or loss uses."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fc_spare = nn.Linear(self.in_channels, self.num_classes)


@_register
class GuardTestTrainBatchNormBackbone2D(TrainsBatchNorm, GuardTinyBackbone2D):
    """The 2-D backbone, its BatchNorm trained at inference."""


@_register
class GuardTestLazyTSNHead(TSNHead):
    """Makes an extra classifier in its first forward (sized from the features)."""

    def forward(self, x, num_segs, **kwargs):
        scores = super().forward(x, num_segs, **kwargs)
        if not hasattr(self, 'fc_late'):
            self.fc_late = nn.Linear(x.shape[1], self.num_classes).to(x.device)
        pooled = self.avg_pool(x).flatten(1).reshape(-1, num_segs, x.shape[1]).mean(1)
        return scores + self.fc_late(pooled)


@_register
class GuardTestFrozenBackbone2D(FreezesPart, GuardTinyBackbone2D):
    """The 2-D backbone with its whole body frozen."""

    frozen = 'body'


def generic(recognizer: str | None = None, backbone: str | None = None,
            head: str | None = None) -> dict[str, Any]:
    """``--cfg-options`` that swap the given variant types into ``tiny_rgbpose.py``."""
    chosen = {'model.type': recognizer, 'model.backbone.type': backbone,
              'model.cls_head.type': head}
    return {key: value for key, value in chosen.items() if value}


#: Each generic defect with the options that select it.
GENERIC_BROKEN = {
    'label remapped in the head': generic(head='GuardTestRemappingRGBPoseHead'),
    'labels as keyword arguments': generic('GuardTestLabelsAsKwargsRecognizer',
                                           head='GuardTestKwargsRGBPoseHead'),
    'labels to the backbone': generic('GuardTestLabelsToBackboneRecognizer',
                                      'GuardTestLabelTakingBackbone'),
    'predict reads the labels': generic(head='GuardTestLabelMaskingRGBPoseHead'),
    'one prediction per clip': generic(head='GuardTestPerClipRGBPoseHead'),
    'unused branch': generic(head='GuardTestUnusedBranchRGBPoseHead'),
    'BatchNorm updated at inference': generic(backbone='GuardTestTrainBatchNormBackbone'),
    'layer made in forward': generic(head='GuardTestLazyRGBPoseHead'),
    'frozen part': generic(backbone='GuardTestFrozenPosePathBackbone'),
}
#: The same defects of the head on the 2-D recognizer (``tiny_tsn.py``).
TSN_BROKEN = {
    'label remapped in the head': generic(head='GuardTestRemappingTSNHead'),
    'predict reads the labels': generic(head='GuardTestLabelMaskingTSNHead'),
    'one prediction per clip': generic(head='GuardTestPerClipTSNHead'),
    'labels as keyword arguments': generic('GuardTestLabelsAsKwargsRecognizer2D'),
    'unused branch': generic(head='GuardTestUnusedBranchTSNHead'),
    'BatchNorm updated at inference': generic(backbone='GuardTestTrainBatchNormBackbone2D'),
    'layer made in forward': generic(head='GuardTestLazyTSNHead'),
    'frozen part': generic(backbone='GuardTestFrozenBackbone2D'),
}
