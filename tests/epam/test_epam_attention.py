"""Tests of epam.attention: pose-driven spatial/temporal attention."""
from __future__ import annotations

import pytest
import torch

from epam.attention import ATTENTION_TYPES, PoseDrivenAttention, build_pose_attention


def _features(t_rgb: int = 4, ratio: int = 3, hw: tuple = (2, 2), n: int = 2):
    torch.manual_seed(0)
    return (torch.randn(n, 8, t_rgb, *hw), torch.randn(n, 6, t_rgb * ratio, *hw))


@pytest.mark.parametrize('kind', sorted(ATTENTION_TYPES))
@pytest.mark.parametrize('t_rgb, ratio, hw', [(4, 3, (2, 2)), (3, 1, (5, 3)), (2, 4, (7, 7))])
def test_shapes_for_any_multiple(kind: str, t_rgb: int, ratio: int, hw: tuple) -> None:
    attention = build_pose_attention(dict(type=kind))
    x_rgb, x_pose = _features(t_rgb, ratio, hw)
    out_rgb, out_pose = attention(x_rgb, x_pose)
    assert out_rgb.shape == x_rgb.shape and out_pose.shape == x_pose.shape
    # f + f * A with A in (0, 1): same sign, magnitude scaled by 1..2
    ratio_rgb = out_rgb / x_rgb
    assert ((ratio_rgb > 1) & (ratio_rgb < 2)).all()


def test_types_build_the_named_parts() -> None:
    both = build_pose_attention(dict(type='spatial_temporal'))
    spatial = build_pose_attention(dict(type='spatial', kernel_size=3))
    temporal = build_pose_attention(dict(type='temporal'))
    assert both.spatial_conv is not None and both.temporal_conv is not None
    assert spatial.temporal_conv is None and spatial.spatial_conv is not None
    assert spatial.spatial_conv.kernel_size == (1, 3, 3)
    assert temporal.spatial_conv is None


def test_spatial_map_is_constant_over_space_for_temporal_only() -> None:
    attention = build_pose_attention(dict(type='temporal'))
    x_rgb = torch.ones(1, 4, 2, 3, 3)
    out, _ = attention(x_rgb, torch.randn(1, 5, 6, 3, 3))
    assert torch.allclose(out, out[..., :1, :1].expand_as(out))


def test_rgb_frame_is_guided_by_its_centre_pose_frame() -> None:
    attention = PoseDrivenAttention(spatial=True, temporal=False)
    x_rgb, x_pose = _features(t_rgb=2, ratio=3)
    reference, _ = attention(x_rgb, x_pose)
    # pose frames 0 and 2 (not centres of [0, 1, 2]) do not matter; frame 1 does
    changed = x_pose.clone()
    changed[:, :, [0, 2]] = torch.randn_like(changed[:, :, [0, 2]])
    assert torch.equal(attention(x_rgb, changed)[0], reference)
    changed[:, :, 1] += 5
    assert not torch.allclose(attention(x_rgb, changed)[0][:, :, 0], reference[:, :, 0])


def test_gradients_reach_both_streams_and_the_convs() -> None:
    attention = build_pose_attention(dict(type='spatial_temporal'))
    x_rgb, x_pose = (t.requires_grad_() for t in _features())
    out_rgb, out_pose = attention(x_rgb, x_pose)
    (out_rgb.sum() + out_pose.sum()).backward()
    for tensor in (x_rgb, x_pose, *attention.parameters()):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_pose_length_must_be_a_multiple() -> None:
    attention = build_pose_attention(dict(type='spatial_temporal'))
    with pytest.raises(ValueError) as info:
        attention(torch.randn(1, 8, 4, 2, 2), torch.randn(1, 6, 10, 2, 2))
    message = str(info.value)
    assert '10 pose frames for 4 RGB frames' in message and 'whole multiple' in message


def test_spatial_sizes_must_match() -> None:
    attention = build_pose_attention(dict(type='spatial'))
    with pytest.raises(ValueError) as info:
        attention(torch.randn(1, 8, 4, 2, 2), torch.randn(1, 6, 12, 4, 4))
    message = str(info.value)
    assert '4x4' in message and '2x2' in message and '1/4' in message


@pytest.mark.parametrize('cfg, match', [
    (dict(type='channel'), 'unknown attention type'),
    (dict(kernel_size=3), "with a 'type'"),
    (dict(type='spatial', spatial=False), 'fixes'),
    (dict(type='spatial', kernel_size=4), 'odd'),
])
def test_bad_configs(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_pose_attention(cfg)


def test_build_does_not_modify_config() -> None:
    cfg = dict(type='spatial_temporal', kernel_size=5)
    build_pose_attention(cfg)
    assert cfg == dict(type='spatial_temporal', kernel_size=5)
