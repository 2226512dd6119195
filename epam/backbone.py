"""EPAM-Net backbone: an X-ShiftNet RGB stream guided by an X-ShiftNet pose stream.

``EPAMBackbone.forward(imgs, heatmap_imgs, gt=None, gt_coarse=None)`` returns
the 6-tuple of CONTRACT.md section 3::

    (x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse)

* ``x_rgb``   (N, 432, T_rgb, H/32, W/32): RGB features after pose guidance,
  ``x_rgb1 + x_rgb1 * A`` (:mod:`epam.attention`); what the head classifies.
* ``x_pose``  (N, 216, T_pose, H/32, W/32): the pose stream's output.
* ``x_rgb1``  same shape as ``x_rgb``: the RGB stream's own features, *before*
  pose guidance. The head's feature-renovation (FR) loss pulls them towards
  their class prototype, so the RGB stream stays discriminative by itself and
  cannot lean on the attention to do its work.
* ``x_pose1`` same shape as ``x_pose``: the pose features re-weighted by the
  same pose-driven attention at the pose frame rate, ``x_pose + x_pose * A``.
  The FR loss on them gives the attention module a direct, label-driven
  signal: it must highlight the positions and frames that separate classes.
* ``gt``, ``gt_coarse``: the fine and coarse labels, echoed unchanged (the
  same objects; None at inference).
"""
from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from typing import Any, Optional

import torch
from mmaction.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from .attention import build_pose_attention, check_stream_shapes

__all__ = ['EPAMBackbone', 'load_stream_weights']

BackboneOutput = tuple[Tensor, Tensor, Tensor, Tensor, Optional[Tensor], Optional[Tensor]]

# Prefixes a stream's keys may carry in a recognizer or DDP checkpoint.
_KEY_PREFIXES = ('module.', 'backbone.')


def _stream_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The tensors of a raw state dict or of one under 'state_dict', prefixes removed."""
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise TypeError(f"'state_dict' must be a mapping, but got {type(state).__name__}")
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    for prefix in _KEY_PREFIXES:
        if tensors and any(k.startswith(prefix) for k in tensors):
            # keep only that part: a recognizer checkpoint also holds cls_head.*
            tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return tensors


def load_stream_weights(stream: nn.Module, path: str, name: str) -> None:
    """Load a checkpoint into one stream, reporting what did not fit.

    Accepts a raw state dict or one under ``'state_dict'`` (``module.`` and
    ``backbone.`` prefixes are stripped). Tensors whose shape differs from the
    stream's are skipped. Missing, unexpected and skipped keys are logged
    through mmengine's current logger.
    """
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f'{name}_pretrained={path!r} holds objects other than tensors, which are not '
            'loaded (weights_only=True). Save the weights alone, e.g. '
            "torch.save({'state_dict': model.state_dict()}, path).") from error
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            f'{name}_pretrained={path!r} holds a {type(checkpoint).__name__}, not a state '
            "dict or a dict with a 'state_dict' entry")
    state = _stream_state_dict(checkpoint)
    own = stream.state_dict()
    mismatched = sorted(k for k, v in state.items() if k in own and v.shape != own[k].shape)
    for key in mismatched:
        del state[key]
    result = stream.load_state_dict(state, strict=False)
    print_log(f'{name} stream: loaded {len(state) - len(result.unexpected_keys)} '
              f'tensors from {path}', logger='current')
    missing = [k for k in result.missing_keys if k not in mismatched]
    for label, keys in (('missing keys', missing),
                        ('unexpected keys', result.unexpected_keys),
                        ('skipped for a shape mismatch', mismatched)):
        if keys:
            print_log(f'{name} stream, {label} ({len(keys)}): {", ".join(keys)}',
                      logger='current', level=logging.WARNING)


@MODELS.register_module()
class EPAMBackbone(BaseModule):
    """Two X-ShiftNet streams and pose-driven attention (see the module docstring).

    Args:
        rgb_stream (dict): Config of the RGB stream (e.g. ``XShiftNet``).
        pose_stream (dict): Config of the pose stream (e.g. ``PoseXShiftNet``).
        attention (dict): ``dict(type='spatial_temporal' | 'spatial' |
            'temporal', **options)``, see :mod:`epam.attention`.
        rgb_pretrained (str | None): Checkpoint for the RGB stream, loaded in
            :meth:`init_weights`. Default: None.
        pose_pretrained (str | None): Checkpoint for the pose stream. Default: None.
        init_cfg (dict | None): mmengine init config. Default: None.
    """

    def __init__(self,
                 rgb_stream: Mapping[str, Any],
                 pose_stream: Mapping[str, Any],
                 attention: Mapping[str, Any] = dict(type='spatial_temporal'),  # noqa: B006
                 rgb_pretrained: str | None = None,
                 pose_pretrained: str | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, path in (('rgb_pretrained', rgb_pretrained),
                           ('pose_pretrained', pose_pretrained)):
            if path is not None and not isinstance(path, (str, os.PathLike)):
                raise TypeError(f'{name} must be a path or None, but got {path!r}')
        self.rgb_stream = MODELS.build(rgb_stream)
        self.pose_stream = MODELS.build(pose_stream)
        self.attention = build_pose_attention(attention)
        self.rgb_pretrained = rgb_pretrained
        self.pose_pretrained = pose_pretrained

    def init_weights(self) -> None:
        """Initialise both streams, then load ``rgb_pretrained``/``pose_pretrained``."""
        super().init_weights()
        for name, stream, path in (('rgb', self.rgb_stream, self.rgb_pretrained),
                                   ('pose', self.pose_stream, self.pose_pretrained)):
            if path is not None:
                load_stream_weights(stream, os.fspath(path), name)

    def _check_inputs(self, imgs: Tensor, heatmap_imgs: Tensor) -> None:
        """Fail before any compute when the two streams cannot meet (plain-words ValueError)."""
        for name, x in (('imgs', imgs), ('heatmap_imgs', heatmap_imgs)):
            if not isinstance(x, Tensor) or x.dim() != 5:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(
                    f'{name} must be an (N, C, T, H, W) tensor (views already folded '
                    f'into N), but got {shape}')
        if not (hasattr(self.rgb_stream, 'output_shape')
                and hasattr(self.pose_stream, 'output_shape')):
            return  # other stream types: the attention checks the features instead
        rgb_shape = self.rgb_stream.output_shape(imgs.shape)
        pose_shape = self.pose_stream.output_shape(heatmap_imgs.shape)
        try:
            check_stream_shapes(tuple(rgb_shape), tuple(pose_shape))
        except ValueError as error:
            raise ValueError(
                f'imgs {tuple(imgs.shape)} and heatmap_imgs {tuple(heatmap_imgs.shape)} '
                f'do not fit together: {error}') from None

    def forward(self,
                imgs: Tensor,
                heatmap_imgs: Tensor,
                gt: Tensor | None = None,
                gt_coarse: Tensor | None = None) -> BackboneOutput:
        """``(N, 3, T, H, W)`` frames and ``(N, 17, k*T, H/4, W/4)`` heat maps -> 6-tuple.

        Returns:
            tuple: ``(x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse)``, see the
            module docstring; ``gt`` and ``gt_coarse`` are returned as given.
        """
        self._check_inputs(imgs, heatmap_imgs)
        x_rgb1 = self.rgb_stream(imgs)
        x_pose = self.pose_stream(heatmap_imgs)
        x_rgb, x_pose1 = self.attention(x_rgb1, x_pose)
        return x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse
