"""Pose-driven attention: the pose stream tells the RGB stream where and when to look.

Given RGB features ``f`` (N, C_rgb, T_rgb, H, W) and pose features ``p``
(N, C_pose, T_pose, H, W) with ``T_pose = k * T_rgb``:

1. ``p`` is summarised per position by its channel max and channel mean
   (CBAM), a 2-channel map ``m`` (N, 2, T_pose, H, W).
2. **spatial**: ``S = sigmoid(conv_kxk(m))``, one map per frame.
3. **temporal**: ``m`` pooled over space gives a 2-channel sequence; an
   ECA-style 1-D conv along time and a sigmoid give one weight per frame ``W``.
4. The attention is ``A = S * W`` (or only one of them), and
   ``f_out = f + f * A`` (a residual, so attention can only re-weight).

For the RGB stream ``m`` is first resampled in time to ``T_rgb`` (every k-th
frame, starting at the middle one of each group of k, ``k // 2``), so each RGB
frame is guided by the pose frame at its centre. The same attention, at the
pose frame rate, also re-weights the pose features themselves (``p + p * A``):
:class:`~epam.backbone.EPAMBackbone` returns that as ``x_pose1``.

Types (the ``attention=dict(type=...)`` option of the backbone):
``'spatial_temporal'`` (both), ``'spatial'``, ``'temporal'``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ['ATTENTION_TYPES', 'PoseDrivenAttention', 'build_pose_attention']

ATTENTION_TYPES = {
    'spatial_temporal': dict(spatial=True, temporal=True),
    'spatial': dict(spatial=True, temporal=False),
    'temporal': dict(spatial=False, temporal=True),
}


def check_stream_shapes(rgb_shape: tuple[int, ...], pose_shape: tuple[int, ...]) -> int:
    """Check that pose features can guide RGB features; return ``T_pose // T_rgb``.

    Raises:
        ValueError: in plain words, with the sizes found and the sizes required.
    """
    if len(rgb_shape) != 5 or len(pose_shape) != 5:
        raise ValueError(
            'pose-driven attention needs 5-D (N, C, T, H, W) features, but got RGB '
            f'{tuple(rgb_shape)} and pose {tuple(pose_shape)}')
    if rgb_shape[0] != pose_shape[0]:
        raise ValueError(
            f'the RGB and pose inputs must hold the same number of clips, but got '
            f'{rgb_shape[0]} RGB clips and {pose_shape[0]} pose clips')
    t_rgb, t_pose = rgb_shape[2], pose_shape[2]
    if t_rgb < 1 or t_pose % t_rgb != 0:
        raise ValueError(
            f'the pose clip must have a whole multiple of the RGB clip\'s frames '
            f'(T_pose = k * T_rgb; k = 3 in the NTU-60 config), but got '
            f'{t_pose} pose frames for {t_rgb} RGB frames')
    if tuple(rgb_shape[3:]) != tuple(pose_shape[3:]):
        raise ValueError(
            f'the pose and RGB feature maps must have the same height and width, but '
            f'the pose features are {pose_shape[3]}x{pose_shape[4]} and the RGB '
            f'features {rgb_shape[3]}x{rgb_shape[4]}. The RGB stream reduces its input '
            '32x and the pose stream 8x, so the heat maps must be 1/4 of the RGB '
            'frame size (56x56 for 224x224 frames)')
    return t_pose // t_rgb


class PoseDrivenAttention(nn.Module):
    """Spatial (CBAM) and/or temporal (ECA) attention computed from pose features.

    Args:
        spatial (bool): Use the per-frame spatial map. Default: True.
        temporal (bool): Use the per-frame temporal weight. Default: True.
        kernel_size (int): Odd size of the spatial conv. Default: 7.
        temporal_kernel_size (int): Odd size of the temporal 1-D conv. Default: 3.
    """

    def __init__(self,
                 spatial: bool = True,
                 temporal: bool = True,
                 kernel_size: int = 7,
                 temporal_kernel_size: int = 3) -> None:
        super().__init__()
        if not (spatial or temporal):
            raise ValueError('PoseDrivenAttention needs spatial or temporal attention')
        for name, size in (('kernel_size', kernel_size),
                           ('temporal_kernel_size', temporal_kernel_size)):
            if size < 1 or size % 2 == 0:
                raise ValueError(f'{name} must be a positive odd int, but got {size}')
        self.spatial = spatial
        self.temporal = temporal
        self.spatial_conv = nn.Conv3d(
            2, 1, kernel_size=(1, kernel_size, kernel_size),
            padding=(0, kernel_size // 2, kernel_size // 2)) if spatial else None
        self.temporal_conv = nn.Conv1d(
            2, 1, kernel_size=temporal_kernel_size,
            padding=temporal_kernel_size // 2) if temporal else None

    def attention_map(self, pooled: Tensor) -> Tensor:
        """``(N, 2, T, H, W)`` channel max/mean -> attention ``(N, 1, T, H|1, W|1)`` in (0, 1)."""
        attention = None
        if self.spatial_conv is not None:
            attention = torch.sigmoid(self.spatial_conv(pooled))
        if self.temporal_conv is not None:
            sequence = pooled.mean(dim=(3, 4))  # (N, 2, T)
            weights = torch.sigmoid(self.temporal_conv(sequence))[..., None, None]
            attention = weights if attention is None else attention * weights
        assert attention is not None, 'the constructor builds at least one of the two'
        return attention

    def forward(self, x_rgb: Tensor, x_pose: Tensor) -> tuple[Tensor, Tensor]:
        """Guide ``x_rgb`` by ``x_pose``.

        Returns:
            tuple[Tensor, Tensor]: ``x_rgb + x_rgb * A_rgb`` (shape of ``x_rgb``)
            and ``x_pose + x_pose * A_pose`` (shape of ``x_pose``), where
            ``A_rgb`` is computed from the pose features resampled to the RGB
            frame rate and ``A_pose`` from all pose frames.
        """
        ratio = check_stream_shapes(tuple(x_rgb.shape), tuple(x_pose.shape))
        pooled = torch.cat(
            [x_pose.amax(dim=1, keepdim=True), x_pose.mean(dim=1, keepdim=True)], dim=1)
        # centre pose frame of each group of `ratio` (per-frame ops commute with this)
        pooled_rgb = pooled[:, :, ratio // 2::ratio]
        attention_rgb = self.attention_map(pooled_rgb)
        attention_pose = self.attention_map(pooled)
        return x_rgb + x_rgb * attention_rgb, x_pose + x_pose * attention_pose

    def extra_repr(self) -> str:
        return f'spatial={self.spatial}, temporal={self.temporal}'


def build_pose_attention(cfg: Mapping[str, Any]) -> PoseDrivenAttention:
    """Build from ``dict(type='spatial_temporal' | 'spatial' | 'temporal', **options)``.

    The config is only read. Unknown types raise a ValueError listing the known ones.
    """
    if not isinstance(cfg, Mapping) or 'type' not in cfg:
        raise ValueError(
            f"attention must be a dict with a 'type' in {sorted(ATTENTION_TYPES)}, "
            f'but got {cfg!r}')
    options = dict(cfg)
    kind = options.pop('type')
    if kind not in ATTENTION_TYPES:
        raise ValueError(
            f'unknown attention type {kind!r}; the pose-driven attention types are '
            f'{sorted(ATTENTION_TYPES)}')
    overlap = sorted(set(options) & set(ATTENTION_TYPES[kind]))
    if overlap:
        raise ValueError(
            f'attention type {kind!r} fixes {overlap}; do not set them in the config')
    return PoseDrivenAttention(**ATTENTION_TYPES[kind], **options)
