"""Two tiny streams and a pose-driven temporal attention, at fixed clip lengths."""
from __future__ import annotations

import torch
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

#: The clip lengths this fork was written for; other lengths do not fit its embeddings.
RGB_FRAMES = 16
POSE_FRAMES = 48


@MODELS.register_module(name='EPAMBackbone')
class ForkBackbone(BaseModule):
    """``forward(imgs, heatmap_imgs, gt=None, gt_coarse=None)`` -> the contract's 6-tuple.

    RGB is reduced 32x in space, heat maps 8x; time is kept.
    """

    def __init__(self, rgb_channels: int = 16, pose_channels: int = 8,
                 heatmap_channels: int = 17, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg)
        self.rgb = nn.Sequential(
            nn.AvgPool3d((1, 8, 8)),
            nn.Conv3d(3, rgb_channels, (3, 4, 4), stride=(1, 4, 4), padding=(1, 0, 0)),
            nn.BatchNorm3d(rgb_channels), nn.ReLU())
        self.pose = nn.Sequential(
            nn.AvgPool3d((1, 2, 2)),
            nn.Conv3d(heatmap_channels, pose_channels, (3, 4, 4), stride=(1, 4, 4),
                      padding=(1, 0, 0)),
            nn.BatchNorm3d(pose_channels), nn.ReLU())
        self.rgb_time = nn.Parameter(torch.zeros(1, rgb_channels, RGB_FRAMES, 1, 1))
        self.pose_time = nn.Parameter(torch.zeros(1, pose_channels, POSE_FRAMES, 1, 1))
        self.rgb_renovate = nn.Conv3d(rgb_channels, rgb_channels, 1)
        self.pose_renovate = nn.Conv3d(pose_channels, pose_channels, 1)

    def forward(self, imgs: torch.Tensor, heatmap_imgs: torch.Tensor,
                gt: torch.Tensor | None = None, gt_coarse: torch.Tensor | None = None
                ) -> tuple:
        x_rgb = self.rgb(imgs) + self.rgb_time
        x_pose = self.pose(heatmap_imgs) + self.pose_time
        ratio = x_pose.shape[2] // x_rgb.shape[2]
        attention = torch.sigmoid(
            nn.functional.avg_pool3d(x_pose, (ratio, 1, 1)).mean(1, keepdim=True))
        x_rgb = x_rgb * (1 + attention)
        return (x_rgb, x_pose, self.rgb_renovate(x_rgb), self.pose_renovate(x_pose),
                gt, gt_coarse)
