"""The fork's hierarchical head: fine/coarse classifiers, renovation and hierarchy losses."""
from __future__ import annotations

from typing import Any

import mmaction
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from mmengine.structures import LabelData
from mmengine.utils import digit_version
from torch import nn

from .hierarchy import COARSE_OF_FINE, NUM_COARSE_CLASSES

#: Planted defects (``model.cls_head.defect=...``).
DEFECTS = ('batch_min_shift', 'coarse_floordiv8', 'cuda_loss', 'recreated_prototype')
#: Where predictions go: 1.0/1.1 write ``pred_scores`` (a LabelData), 1.2 ``pred_score``.
PREDICTION_FIELD = ('pred_score' if digit_version(mmaction.__version__) >= digit_version('1.2.0')
                    else 'pred_scores')
STREAMS = ('rgb', 'pose')


class RenovationLoss(nn.Module):
    """Pull each normalised feature towards its class prototype (cosine distance)."""

    def forward(self, features: torch.Tensor, labels: torch.Tensor,
                prototypes: torch.Tensor) -> torch.Tensor:
        target = F.normalize(prototypes[labels], dim=1)
        return (1 - (F.normalize(features, dim=1) * target).sum(1)).mean()


class HierarchyLoss(nn.Module):
    """KL between the coarse prediction and the fine prediction summed per group."""

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor,
                membership: torch.Tensor) -> torch.Tensor:
        grouped = F.softmax(fine, dim=1) @ membership
        return F.kl_div(F.log_softmax(coarse, dim=1), grouped.clamp_min(1e-8),
                        reduction='batchmean')


@MODELS.register_module()
class EPAMForkHead(BaseModule):
    """Reads ``(x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse)``; losses by weight."""

    def __init__(self, num_classes: int, in_channels: tuple[int, int],
                 num_coarse_classes: int = NUM_COARSE_CLASSES,
                 loss_weights: tuple[float, ...] = (1.0, 1.2, 0.5, 0.9),
                 momentum: float = 0.9, defect: str | list[str] | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg)
        self.defects = {defect} if isinstance(defect, str) else set(defect or ())
        if self.defects - set(DEFECTS):
            raise ValueError(f'unknown defect {defect!r}; choose from {DEFECTS}')
        self.momentum = momentum
        self.num_classes, self.loss_weights = num_classes, tuple(loss_weights)
        self.fc = nn.ModuleDict()
        for stream, channels in zip(STREAMS, in_channels):
            self.fc[stream] = nn.Linear(channels, num_classes)
            self.fc[f'{stream}_coarse'] = nn.Linear(channels, num_coarse_classes)
            for name, rows in ((stream, num_classes), (f'{stream}_coarse', num_coarse_classes)):
                self.register_buffer(f'{name}_prototypes', torch.randn(rows, channels))
        if 'recreated_prototype' in self.defects:
            self.rgb_memory = nn.Parameter(torch.randn(num_classes, in_channels[0]))
        self.register_buffer('coarse_of_fine', torch.tensor(COARSE_OF_FINE), persistent=False)
        self.register_buffer('membership', F.one_hot(self.coarse_of_fine).float(),
                             persistent=False)
        self.loss_fine = nn.CrossEntropyLoss()
        self.loss_coarse = nn.CrossEntropyLoss()
        self.renovation = RenovationLoss()
        self.hierarchy = HierarchyLoss()

    def forward(self, x: tuple) -> dict[str, torch.Tensor]:
        x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse = x
        pooled = {'rgb': x_rgb.mean((2, 3, 4)), 'pose': x_pose.mean((2, 3, 4))}
        scores = {name: layer(pooled[name.split('_')[0]]) for name, layer in self.fc.items()}
        if not self.training or gt is None:
            return scores
        renovated = {'rgb': x_rgb1.mean((2, 3, 4)), 'pose': x_pose1.mean((2, 3, 4))}
        if 'recreated_prototype' in self.defects:
            # A memory made anew each step: a new trainable parameter every forward.
            self.rgb_memory = nn.Parameter(self.rgb_prototypes.detach().clone())
        for stream in STREAMS:
            for suffix, labels in (('', gt), ('_coarse', gt_coarse)):
                name = f'{stream}{suffix}'
                prototypes = getattr(self, f'{name}_prototypes')
                if 'recreated_prototype' in self.defects and name == 'rgb':
                    prototypes = self.rgb_memory
                scores[f'{name}_renovation_loss'] = self.renovation(
                    renovated[stream], labels, prototypes)
                self._update(f'{name}_prototypes', renovated[stream], labels)
            scores[f'hierarchy_{stream}_loss'] = self.hierarchy(
                scores[stream], scores[f'{stream}_coarse'], self.membership)
        return scores

    @torch.no_grad()
    def _update(self, name: str, features: torch.Tensor, labels: torch.Tensor) -> None:
        memory = getattr(self, name)
        for label in labels.unique():
            mean = features[labels == label].mean(0)
            memory[label] = self.momentum * memory[label] + (1 - self.momentum) * mean

    def loss(self, feats: tuple, data_samples: list, **kwargs: Any) -> dict[str, torch.Tensor]:
        scores = self(feats)
        fine = torch.cat([sample.gt_labels.item for sample in data_samples])
        fine = fine.to(scores['rgb'].device).long()
        fine = fine.repeat_interleave(scores['rgb'].shape[0] // fine.numel())
        if 'batch_min_shift' in self.defects and int(fine.min()) >= 1:
            fine = fine - 1  # "labels are 1-based when no 0 is seen"
        coarse = fine // 8 if 'coarse_floordiv8' in self.defects else self.coarse_of_fine[fine]
        weights = torch.tensor(self.loss_weights)
        weights = weights.cuda() if 'cuda_loss' in self.defects else weights.to(fine.device)
        losses = {key: value for key, value in scores.items() if 'loss' in key}
        for index, name in enumerate(('rgb', 'pose', 'rgb_coarse', 'pose_coarse')):
            target, loss = (coarse, self.loss_coarse) if 'coarse' in name \
                else (fine, self.loss_fine)
            key = f'{name}_loss' if 'coarse' in name else f'{name}_fine_loss'
            losses[key] = weights[index] * loss(scores[name], target)
        for k in (1, 5):
            top = scores['rgb'].detach().topk(k, dim=1).indices
            losses[f'top{k}_acc'] = (top == fine[:, None]).any(1).float().mean()
        return losses

    def predict(self, feats: tuple, data_samples: list, **kwargs: Any) -> list:
        scores = self(feats)
        clips = scores['rgb'].shape[0] // len(data_samples)
        averaged = {stream: F.softmax(scores[stream], dim=1).view(len(data_samples), clips, -1)
                    .mean(1) for stream in STREAMS}
        for index, sample in enumerate(data_samples):
            prediction = {stream: averaged[stream][index] for stream in STREAMS}
            if PREDICTION_FIELD == 'pred_scores':
                sample.pred_scores = LabelData(**prediction)
            else:
                sample.set_field(prediction, 'pred_score')
        return data_samples
