"""Tests of epam.streams: X-ShiftNet RGB and pose streams."""
from __future__ import annotations

import pytest
import torch
from mmaction.models.backbones.resnet_tsm import TemporalShift
from mmaction.models.backbones.x3d import X3D, BlockX3D
from mmaction.registry import MODELS

from epam.streams import PoseXShiftNet, ShiftBlockX3D, XShiftNet, temporal_shift_3d


def _stream(cfg_key: str, model_cfg: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    stream = MODELS.build(model_cfg['backbone'][cfg_key])
    stream.init_weights()
    return stream


def test_temporal_shift_moves_one_eighth_each_way() -> None:
    n, c, t = 2, 16, 5
    x = torch.arange(n * c * t, dtype=torch.float).view(n, c, t, 1, 1).expand(-1, -1, -1, 2, 3)
    out = temporal_shift_3d(x, shift_div=8)
    fold = c // 8
    # channels [0, fold) take the next frame's values, the last frame gets zeros
    assert torch.equal(out[:, :fold, :-1], x[:, :fold, 1:])
    assert torch.equal(out[:, :fold, -1], torch.zeros_like(out[:, :fold, -1]))
    # channels [fold, 2 fold) take the previous frame's values
    assert torch.equal(out[:, fold:2 * fold, 1:], x[:, fold:2 * fold, :-1])
    assert torch.equal(out[:, fold:2 * fold, 0], torch.zeros_like(out[:, fold:2 * fold, 0]))
    assert torch.equal(out[:, 2 * fold:], x[:, 2 * fold:])


def test_temporal_shift_equals_mmaction_on_frames() -> None:
    x = torch.randn(2, 24, 4, 3, 3)
    frames = x.transpose(1, 2).reshape(8, 24, 3, 3)
    expected = TemporalShift.shift(frames, 4, shift_div=8).view(2, 4, 24, 3, 3).transpose(1, 2)
    assert torch.equal(temporal_shift_3d(x, 8), expected)


def test_every_block_shifts(model_cfg: dict) -> None:
    for key in ('rgb_stream', 'pose_stream'):
        stream = _stream(key, model_cfg)
        blocks = [m for m in stream.modules() if isinstance(m, BlockX3D)]
        assert blocks and all(type(b) is ShiftBlockX3D and b.shift_div == 8 for b in blocks)


def test_shift_block_shifts_the_residual_branch_only() -> None:
    torch.manual_seed(0)
    block = ShiftBlockX3D(16, 32, 16, shift_div=8).eval()
    plain = BlockX3D(16, 32, 16).eval()
    torch.nn.init.normal_(block.conv3.bn.weight)  # undo the zero-init residual
    plain.load_state_dict(block.state_dict())
    x = torch.randn(2, 16, 3, 4, 4)
    branch = plain.conv3(plain.swish(plain.conv2(plain.conv1(temporal_shift_3d(x, 8)))))
    expected = plain.relu(branch + x)
    with torch.no_grad():
        assert torch.allclose(block(x), expected, atol=1e-6)
        assert not torch.allclose(block(x), plain(x), atol=1e-3)


def test_rgb_stream_is_x3d_m_with_the_same_parameter_names() -> None:
    ours = XShiftNet(gamma_w=1, gamma_b=2.25, gamma_d=2.2).state_dict()
    x3d = X3D(gamma_w=1, gamma_b=2.25, gamma_d=2.2).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in x3d.items()}


def test_pose_stream_structure(model_cfg: dict) -> None:
    stream = _stream('pose_stream', model_cfg)
    assert isinstance(stream, PoseXShiftNet)
    assert [len(getattr(stream, name)) for name in stream.res_layers] == [5, 11, 7]
    assert stream.conv1_s.conv.stride == (1, 1, 1)
    assert [stream.base_channels * 2**i for i in range(3)] == [24, 48, 96]
    assert stream.feat_dim == 216


@pytest.mark.parametrize('key, shape, expected', [
    ('rgb_stream', (2, 3, 4, 64, 64), (2, 432, 4, 2, 2)),
    ('pose_stream', (2, 17, 12, 16, 16), (2, 216, 12, 2, 2)),
    ('rgb_stream', (1, 3, 2, 96, 64), (1, 432, 2, 3, 2)),
])
def test_small_shapes(model_cfg: dict, key: str, shape: tuple, expected: tuple) -> None:
    stream = _stream(key, model_cfg).train()
    out = stream(torch.randn(shape))
    assert out.shape == expected
    assert stream.output_shape(shape) == expected  # type: ignore[operator]  # a registry build
    assert torch.isfinite(out).all()


def test_wrong_input_channels_are_named(model_cfg: dict) -> None:
    stream = _stream('pose_stream', model_cfg)
    with pytest.raises(ValueError, match=r'\(N, 17, T, H, W\)'):
        stream(torch.randn(1, 3, 4, 16, 16))


@pytest.mark.slow
@pytest.mark.parametrize('key, shape, expected', [
    ('rgb_stream', (1, 3, 16, 224, 224), (1, 432, 16, 7, 7)),
    ('pose_stream', (1, 17, 48, 56, 56), (1, 216, 48, 7, 7)),
])
def test_ntu_shapes(model_cfg: dict, key: str, shape: tuple, expected: tuple) -> None:
    stream = _stream(key, model_cfg).eval()
    with torch.no_grad():
        out = stream(torch.randn(shape))
    assert out.shape == expected
