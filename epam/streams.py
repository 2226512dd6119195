"""X-ShiftNet: X3D with a temporal shift in every block, for RGB and for pose.

Both streams are MMAction2's :class:`~mmaction.models.backbones.X3D` built
from its own pieces (``BlockX3D``, ``make_res_layer``, ``init_weights``,
``forward``, ``train``); the only change to a block is a TSM-style temporal
shift (MMAction2's ``TemporalShift.shift``) of 1/``shift_div`` of the channels
one frame back and 1/``shift_div`` one frame forward, applied on the residual
branch before the block's first 1x1x1 conv. Neither stream down-samples time.

* :class:`XShiftNet` (RGB): X3D with ``gamma_w=1, gamma_b=2.25, gamma_d=2.2``
  (X3D-M widths and depths), ``(N, 3, 16, 224, 224) -> (N, 432, 16, 7, 7)``.
  Its parameter names equal X3D's, so X3D checkpoints load into it.
* :class:`PoseXShiftNet` (pose heat maps): 17 input channels, base width 24,
  3 stages of (5, 11, 7) blocks, no spatial stride in the stem,
  ``(N, 17, 48, 56, 56) -> (N, 216, 48, 7, 7)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.utils.checkpoint as cp
from mmaction.models.backbones.resnet_tsm import TemporalShift
from mmaction.models.backbones.x3d import X3D, BlockX3D
from mmaction.registry import MODELS
from mmcv.cnn import ConvModule
from torch import Tensor, nn

__all__ = ['ShiftBlockX3D', 'XShiftNet', 'PoseXShiftNet', 'temporal_shift_3d']


def temporal_shift_3d(x: Tensor, shift_div: int) -> Tensor:
    """TSM shift of an ``(N, C, T, H, W)`` tensor along T, via ``TemporalShift.shift``.

    The first ``C // shift_div`` channels move one frame earlier, the next
    ``C // shift_div`` one frame later (zero-filled at the ends), the rest stay.
    """
    n, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(n * t, c, h, w)
    shifted = TemporalShift.shift(frames, t, shift_div=shift_div)
    return shifted.view(n, t, c, h, w).transpose(1, 2).contiguous()


class ShiftBlockX3D(BlockX3D):
    """:class:`BlockX3D` whose residual branch sees temporally shifted input.

    Args:
        *args: Positional arguments of :class:`BlockX3D`.
        shift_div (int): 1/``shift_div`` of the channels shift each way. Default: 8.
        **kwargs: Keyword arguments of :class:`BlockX3D`.
    """

    def __init__(self, *args: Any, shift_div: int = 8, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if shift_div < 2:
            raise ValueError(f'shift_div must be >= 2, but got {shift_div}')
        self.shift_div = shift_div

    def forward(self, x: Tensor) -> Tensor:
        """Residual block; the identity path is not shifted (TSM's residual shift)."""

        def _inner_forward(x: Tensor) -> Tensor:
            out = self.conv1(temporal_shift_3d(x, self.shift_div))
            out = self.conv2(out)
            if self.se_ratio is not None:
                out = self.se_module(out)
            out = self.conv3(self.swish(out))
            identity = x if self.downsample is None else self.downsample(x)
            return out + identity

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)


class _ShiftX3D(X3D):
    """X3D with explicit widths/depths and :class:`ShiftBlockX3D` blocks.

    ``X3D.__init__`` hard-codes base width 24, depths (1, 2, 5, 3) and a
    stride-2 stem; this constructor takes them as arguments and otherwise
    builds exactly what ``X3D.__init__`` builds (same attribute and module
    names), reusing X3D's ``make_res_layer``, ``init_weights``, ``forward``,
    ``train`` and ``_freeze_stages``.

    Args:
        in_channels (int): Input channels.
        base_channels (int): Width of the stem and of stage 1; stage ``i``
            has ``base_channels * 2**i`` channels.
        stage_blocks (Sequence[int]): Number of blocks per stage.
        spatial_strides (Sequence[int]): Spatial stride of each stage.
        stem_spatial_stride (int): Spatial stride of the stem's 1x3x3 conv.
        gamma_b (float): Bottleneck expansion; also the expansion of the final
            1x1x1 conv (``conv5``), so the output has
            ``int(base_channels * 2**(num_stages - 1) * gamma_b)`` channels.
        shift_div (int): Temporal-shift fraction, see :class:`ShiftBlockX3D`.
        pretrained (str | None): X3D's own checkpoint argument (mmengine
            ``load_checkpoint``); :class:`~epam.backbone.EPAMBackbone` loads
            stream weights itself, so this is normally None.
        se_style, se_ratio, use_swish, conv_cfg, norm_cfg, act_cfg, norm_eval,
        with_cp, zero_init_residual, frozen_stages: As in :class:`X3D`.
    """

    def __init__(self,
                 in_channels: int,
                 base_channels: int,
                 stage_blocks: Sequence[int],
                 spatial_strides: Sequence[int],
                 stem_spatial_stride: int = 2,
                 gamma_b: float = 2.25,
                 shift_div: int = 8,
                 pretrained: str | None = None,
                 se_style: str = 'half',
                 se_ratio: float | None = 1 / 16,
                 use_swish: bool = True,
                 conv_cfg: dict | None = None,
                 norm_cfg: dict | None = None,
                 act_cfg: dict | None = None,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 frozen_stages: int = -1) -> None:
        # X3D.__init__ would build fixed-depth stages; build through nn.Module.
        nn.Module.__init__(self)
        if len(spatial_strides) != len(stage_blocks):
            raise ValueError(
                f'spatial_strides must give one stride per stage: {len(stage_blocks)} '
                f'stages (stage_blocks={tuple(stage_blocks)}), but got '
                f'spatial_strides={tuple(spatial_strides)}')
        if se_style not in ('all', 'half'):
            raise ValueError(f"se_style must be 'all' or 'half', but got {se_style!r}")
        self.gamma_b = gamma_b
        self.pretrained = pretrained
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.stage_blocks = list(stage_blocks)
        self.num_stages = len(self.stage_blocks)
        self.spatial_strides = tuple(spatial_strides)
        self.stem_spatial_stride = stem_spatial_stride
        self.frozen_stages = frozen_stages
        self.se_style = se_style
        self.se_ratio = se_ratio
        self.use_swish = use_swish
        self.conv_cfg = conv_cfg or dict(type='Conv3d')
        self.norm_cfg = norm_cfg or dict(type='BN3d', requires_grad=True)
        self.act_cfg = act_cfg or dict(type='ReLU', inplace=True)
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.zero_init_residual = zero_init_residual
        self.shift_div = shift_div
        self.block = ShiftBlockX3D

        self.layer_inplanes = self.base_channels
        self._make_stem_layer()
        self.res_layers = []
        for i, (num_blocks, stride) in enumerate(zip(self.stage_blocks,
                                                     self.spatial_strides)):
            inplanes = self.base_channels * 2**i
            res_layer = self.make_res_layer(
                self.block,
                self.layer_inplanes,
                inplanes,
                int(inplanes * self.gamma_b),
                num_blocks,
                spatial_stride=stride,
                se_style=self.se_style,
                se_ratio=self.se_ratio,
                use_swish=self.use_swish,
                norm_cfg=self.norm_cfg,
                conv_cfg=self.conv_cfg,
                act_cfg=self.act_cfg,
                with_cp=self.with_cp,
                shift_div=self.shift_div)
            self.layer_inplanes = inplanes
            layer_name = f'layer{i + 1}'
            self.add_module(layer_name, res_layer)
            self.res_layers.append(layer_name)

        last_channels = self.base_channels * 2**(self.num_stages - 1)
        self.feat_dim = int(last_channels * self.gamma_b)
        self.conv5 = ConvModule(
            last_channels,
            self.feat_dim,
            kernel_size=1,
            bias=False,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def _make_stem_layer(self) -> None:
        """X3D's stem (1x3x3 conv, then depthwise 5x1x1 conv) with a configurable stride."""
        stride = self.stem_spatial_stride
        self.conv1_s = ConvModule(
            self.in_channels,
            self.base_channels,
            kernel_size=(1, 3, 3),
            stride=(1, stride, stride),
            padding=(0, 1, 1),
            bias=False,
            conv_cfg=self.conv_cfg,
            norm_cfg=None,
            act_cfg=None)
        self.conv1_t = ConvModule(
            self.base_channels,
            self.base_channels,
            kernel_size=(5, 1, 1),
            padding=(2, 0, 0),
            groups=self.base_channels,
            bias=False,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        """The output shape for an ``(N, C, T, H, W)`` input, computed without running."""
        n, _, t, h, w = input_shape
        for stride in (self.stem_spatial_stride, *self.spatial_strides):
            # a 3x3 conv with padding 1 and stride s maps L to ceil(L / s)
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        return torch.Size((n, self.feat_dim, t, h, w))

    def train(self, mode: bool = True) -> _ShiftX3D:
        """X3D's ``train`` (frozen stages, ``norm_eval``), returning ``self`` as nn.Module does."""
        super().train(mode)  # X3D.train returns None
        return self

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, T, H, W) -> (N, feat_dim, T, H / total_stride, W / total_stride)``."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects an (N, {self.in_channels}, T, H, W) '
                f'tensor, but got shape {tuple(x.shape)}')
        return super().forward(x)


@MODELS.register_module()
class XShiftNet(_ShiftX3D):
    """X-ShiftNet RGB stream: X3D (``gamma_w``, ``gamma_b``, ``gamma_d``) + temporal shift.

    Widths and depths follow X3D's own rules (base 24 rounded by ``gamma_w``,
    depths ``ceil(gamma_d * (1, 2, 5, 3))``), strides 2 in the stem and in
    every stage (output stride 32), no temporal stride. With the defaults:
    ``(N, 3, T, H, W) -> (N, 432, T, H / 32, W / 32)``.

    Args:
        gamma_w (float): Width multiplier. Default: 1.
        gamma_b (float): Bottleneck multiplier. Default: 2.25.
        gamma_d (float): Depth multiplier. Default: 2.2.
        shift_div (int): Temporal-shift fraction. Default: 8.
        in_channels (int): Input channels. Default: 3.
        num_stages (int): Stages kept, 1..4. Default: 4.
        spatial_strides (Sequence[int]): Per-stage spatial strides. Default: (2, 2, 2, 2).
        **kwargs: Further :class:`_ShiftX3D` options (``se_ratio``, ``norm_cfg``, ...).
    """

    def __init__(self,
                 gamma_w: float = 1.0,
                 gamma_b: float = 2.25,
                 gamma_d: float = 2.2,
                 shift_div: int = 8,
                 in_channels: int = 3,
                 num_stages: int = 4,
                 spatial_strides: Sequence[int] = (2, 2, 2, 2),
                 **kwargs: Any) -> None:
        if not 1 <= num_stages <= 4:
            raise ValueError(f'num_stages must be in 1..4, but got {num_stages}')
        x3d_depths = (1, 2, 5, 3)  # X3D's base depths, as in X3D.__init__
        super().__init__(
            in_channels=in_channels,
            base_channels=X3D._round_width(24, gamma_w),
            stage_blocks=[X3D._round_repeats(d, gamma_d) for d in x3d_depths][:num_stages],
            spatial_strides=spatial_strides,
            stem_spatial_stride=2,
            gamma_b=gamma_b,
            shift_div=shift_div,
            **kwargs)
        self.gamma_w = gamma_w
        self.gamma_d = gamma_d


@MODELS.register_module()
class PoseXShiftNet(_ShiftX3D):
    """X-ShiftNet pose stream over keypoint heat maps.

    Stem without spatial stride, then one stride-2 stage per entry of
    ``stage_blocks`` (widths ``base_channels * 2**i``), then X3D's 1x1x1
    ``conv5`` expansion by ``gamma_b``. With the defaults:
    ``(N, 17, T, H, W) -> (N, 216, T, H / 8, W / 8)``.

    Args:
        in_channels (int): Heat-map channels (keypoints). Default: 17.
        base_channels (int): Stage-1 width. Default: 24.
        stage_blocks (Sequence[int]): Blocks per stage. Default: (5, 11, 7).
        spatial_strides (Sequence[int] | None): Per-stage strides; None means 2
            for every stage. Default: None.
        gamma_b (float): Bottleneck and ``conv5`` expansion. Default: 2.25.
        shift_div (int): Temporal-shift fraction. Default: 8.
        **kwargs: Further :class:`_ShiftX3D` options.
    """

    def __init__(self,
                 in_channels: int = 17,
                 base_channels: int = 24,
                 stage_blocks: Sequence[int] = (5, 11, 7),
                 spatial_strides: Sequence[int] | None = None,
                 gamma_b: float = 2.25,
                 shift_div: int = 8,
                 **kwargs: Any) -> None:
        if spatial_strides is None:
            spatial_strides = (2, ) * len(stage_blocks)
        super().__init__(
            in_channels=in_channels,
            base_channels=base_channels,
            stage_blocks=stage_blocks,
            spatial_strides=spatial_strides,
            stem_spatial_stride=1,
            gamma_b=gamma_b,
            shift_div=shift_div,
            **kwargs)

