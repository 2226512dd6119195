"""The fork's head: fine/coarse classifiers per stream, renovation and tree losses."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from .labels import COARSE_OF_FINE, fine_labels

#: Planted defects (``model.cls_head.defects=[...]``).
DEFECTS = ('cuda_state_space', 'cuda_in_loss', 'recreated_parameter')
STREAMS = ('rgb', 'pose')
SCORES = ('rgb', 'pose', 'rgb_coarse', 'pose_coarse')


class RenovationLoss(nn.Module):
    """Pull each normalised feature towards its class prototype (cosine distance)."""

    def forward(self, features: torch.Tensor, labels: torch.Tensor,
                prototypes: torch.Tensor) -> torch.Tensor:
        return 1 - F.cosine_similarity(features, prototypes[labels], dim=1).mean()


class TreeLoss(nn.Module):
    """KL between the coarse prediction and the fine prediction summed over its group."""

    def __init__(self, coarse_of_fine: tuple[int, ...], cuda: bool = False) -> None:
        super().__init__()
        self.coarse_of_fine = coarse_of_fine
        if cuda:  # the planted defect: the state space built straight onto the GPU
            self.state_space = self.make_state_space().cuda()
        else:
            self.register_buffer('state_space', self.make_state_space(), persistent=False)

    def make_state_space(self) -> torch.Tensor:
        return F.one_hot(torch.tensor(self.coarse_of_fine)).float()

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        grouped = F.softmax(fine, dim=1) @ self.state_space
        return F.kl_div(F.log_softmax(coarse, dim=1), grouped.clamp_min(1e-8),
                        reduction='batchmean')


@MODELS.register_module()
class Fork28Head(BaseModule):
    """Reads ``(x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse)``; 4 score keys per prediction."""

    def __init__(self, num_classes: int, num_coarse_classes: int, in_channels: list[int],
                 loss_weights: tuple[float, ...] = (1.0, 1.2, 0.5, 0.9), momentum: float = 0.9,
                 defects: list[str] | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg)
        self.defects = set(defects or ())
        if self.defects - set(DEFECTS):
            raise ValueError(f'unknown defects {sorted(self.defects - set(DEFECTS))}; choose '
                             f'from {DEFECTS}')
        if len(COARSE_OF_FINE) != num_classes or max(COARSE_OF_FINE) + 1 != num_coarse_classes:
            raise ValueError(f'the fork groups {len(COARSE_OF_FINE)} actions into '
                             f'{max(COARSE_OF_FINE) + 1}, not {num_classes} into '
                             f'{num_coarse_classes}')
        self.loss_weights, self.momentum = tuple(loss_weights), momentum
        widths = {'': num_classes, '_coarse': num_coarse_classes}
        sizes = {f'{stream}{kind}': (rows, channels) for stream, channels in
                 zip(STREAMS, in_channels) for kind, rows in widths.items()}
        self.fc = nn.ModuleDict({name: nn.Linear(channels, rows)
                                 for name, (rows, channels) in sizes.items()})
        for name, size in sizes.items():
            self.register_buffer(f'{name}_prototypes', torch.randn(size))
        self.register_buffer('coarse_of_fine', torch.tensor(COARSE_OF_FINE), persistent=False)
        self.loss_fine = nn.CrossEntropyLoss()
        self.loss_coarse = nn.CrossEntropyLoss()
        self.renovation = RenovationLoss()
        self.tree = TreeLoss(COARSE_OF_FINE, cuda='cuda_state_space' in self.defects)

    def forward(self, x: tuple) -> dict[str, torch.Tensor]:
        gt, gt_coarse = x[4:]
        pooled = dict(zip(STREAMS, (feature.flatten(2).mean(2) for feature in x[:2])))
        scores = {name: layer(pooled[name.split('_')[0]]) for name, layer in self.fc.items()}
        if not self.training or gt is None:
            return scores
        renovated = dict(zip(STREAMS, (feature.flatten(2).mean(2) for feature in x[2:4])))
        for stream in STREAMS:
            for suffix, labels in (('', gt), ('_coarse', gt_coarse)):
                name = f'{stream}{suffix}'
                prototypes = getattr(self, f'{name}_prototypes')
                if 'recreated_parameter' in self.defects and name == 'rgb':
                    # the planted defect: a new trainable parameter at every training forward
                    self.rgb_memory = nn.Parameter(prototypes.detach().clone())
                    prototypes = self.rgb_memory
                scores[f'{name}_loss_fr'] = self.renovation(renovated[stream], labels,
                                                            prototypes)
                self._update(f'{name}_prototypes', renovated[stream], labels)
            scores[f'{stream}_loss_tree'] = self.tree(scores[stream], scores[f'{stream}_coarse'])
        return scores

    @torch.no_grad()
    def _update(self, name: str, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Move each seen class's prototype towards the mean of its features (EMA)."""
        memory = getattr(self, name)
        sums = torch.zeros_like(memory).index_add_(0, labels, features)
        counts = torch.bincount(labels, minlength=memory.shape[0]).to(features.dtype)
        seen = counts > 0
        means = sums[seen] / counts[seen, None]
        memory[seen] = memory[seen].lerp(means, 1 - self.momentum)

    def loss(self, feats: tuple, data_samples: list, **kwargs: Any) -> dict[str, torch.Tensor]:
        scores = self(feats)
        fine = fine_labels(data_samples).to(scores['rgb'].device)
        fine = fine.repeat_interleave(scores['rgb'].shape[0] // fine.numel())
        coarse = self.coarse_of_fine[fine]
        weights = torch.tensor(self.loss_weights)
        # the planted defect: the weights put on the GPU by hand
        weights = weights.cuda() if 'cuda_in_loss' in self.defects else weights.to(fine.device)
        losses = {key: value for key, value in scores.items() if 'loss' in key}
        for index, name in enumerate(SCORES):
            target, loss = (coarse, self.loss_coarse) if 'coarse' in name \
                else (fine, self.loss_fine)
            losses[f'{name}_loss_cls'] = weights[index] * loss(scores[name], target)
        ranked = scores['rgb'].detach().argsort(dim=1, descending=True)
        hits = ranked == fine[:, None]
        losses.update({f'top{k}_acc': hits[:, :k].any(1).float().mean() for k in (1, 5)})
        return losses

    def predict(self, feats: tuple, data_samples: list, **kwargs: Any) -> list:
        scores = self(feats)
        clips = scores['rgb'].shape[0] // len(data_samples)
        averaged = {key: F.softmax(scores[key], dim=1).view(len(data_samples), clips, -1).mean(1)
                    for key in SCORES}
        for index, sample in enumerate(data_samples):
            sample.set_field({key: averaged[key][index] for key in SCORES}, 'pred_score')
        return data_samples
