"""Two tiny pathways with time embeddings fixed to 8 RGB / 32 pose frames."""
from __future__ import annotations

import torch
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

#: The clip lengths this fork was written for; other lengths do not fit its embeddings.
RGB_FRAMES = 8
POSE_FRAMES = 32


def pathway(in_channels: int, channels: int, pool: int) -> nn.Sequential:
    """Average-pool space by ``pool``, then a strided convolution (space / 4, time kept)."""
    return nn.Sequential(
        nn.AvgPool3d((1, pool, pool)),
        nn.Conv3d(in_channels, channels, (3, 4, 4), stride=(1, 4, 4), padding=(1, 0, 0)),
        nn.BatchNorm3d(channels), nn.ReLU())


@MODELS.register_module()
class Fork28Backbone(BaseModule):
    """``forward(imgs, heatmap_imgs, gt=None, gt_coarse=None)`` -> the contract's 6-tuple."""

    def __init__(self, rgb_pathway: dict, pose_pathway: dict,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg)
        self.rgb = pathway(rgb_pathway['in_channels'], rgb_pathway['channels'], 8)
        self.pose = pathway(pose_pathway['in_channels'], pose_pathway['channels'], 2)
        self.rgb_time = nn.Parameter(torch.zeros(1, rgb_pathway['channels'], RGB_FRAMES, 1, 1))
        self.pose_time = nn.Parameter(
            torch.zeros(1, pose_pathway['channels'], POSE_FRAMES, 1, 1))
        self.rgb_renovate = nn.Conv3d(rgb_pathway['channels'], rgb_pathway['channels'], 1)
        self.pose_renovate = nn.Conv3d(pose_pathway['channels'], pose_pathway['channels'], 1)

    def forward(self, imgs: torch.Tensor, heatmap_imgs: torch.Tensor,
                gt: torch.Tensor | None = None, gt_coarse: torch.Tensor | None = None
                ) -> tuple:
        x_rgb = self.rgb(imgs) + self.rgb_time
        x_pose = self.pose(heatmap_imgs) + self.pose_time
        # pose-driven temporal attention: the pose frames of each RGB frame, averaged
        frames = x_rgb.shape[2]
        grouped = x_pose.mean(1).unflatten(1, (frames, -1)).mean(2)
        x_rgb = x_rgb + x_rgb * torch.sigmoid(grouped.unsqueeze(1))
        renovated = self.rgb_renovate(x_rgb), self.pose_renovate(x_pose)
        return x_rgb, x_pose, *renovated, gt, gt_coarse
