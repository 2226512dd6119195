"""Tests of epam.backbone: the 6-tuple, its sizes, and pretrained stream weights."""
from __future__ import annotations

import copy
from unittest import mock

import pytest
import torch
from mmaction.registry import MODELS

from epam.backbone import EPAMBackbone


class _NotATensor:
    """An object a weights-only load refuses (like mmengine's message-hub state)."""


def _backbone(model_cfg: dict, init: bool = True, **overrides: object) -> EPAMBackbone:
    cfg = copy.deepcopy(model_cfg['backbone'])
    cfg.update(overrides)
    torch.manual_seed(0)
    backbone = MODELS.build(cfg)
    if init:
        backbone.init_weights()
    return backbone


@pytest.fixture(scope='module')
def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(2, 3, 4, 64, 64, generator=generator),
            torch.rand(2, 17, 12, 16, 16, generator=generator))


def test_six_tuple_small(model_cfg: dict, tiny_batch) -> None:
    backbone = _backbone(model_cfg)
    gt, gt_coarse = torch.tensor([3, 41]), torch.tensor([0, 4])
    out = backbone(*tiny_batch, gt, gt_coarse)
    assert isinstance(out, tuple) and len(out) == 6
    x_rgb, x_pose, x_rgb1, x_pose1, gt_out, gt_coarse_out = out
    assert x_rgb.shape == x_rgb1.shape == (2, 432, 4, 2, 2)
    assert x_pose.shape == x_pose1.shape == (2, 216, 12, 2, 2)
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in out[:4])
    assert gt_out is gt and gt_coarse_out is gt_coarse
    # x_rgb1/x_pose1 are distinct tensors with their own values
    assert x_rgb1.data_ptr() != x_rgb.data_ptr() and not torch.equal(x_rgb1, x_rgb)
    assert x_pose1.data_ptr() != x_pose.data_ptr() and not torch.equal(x_pose1, x_pose)


def test_x_rgb1_is_the_unguided_rgb_stream(model_cfg: dict, tiny_batch) -> None:
    backbone = _backbone(model_cfg).eval()
    with torch.no_grad():
        out = backbone(*tiny_batch)
        assert torch.equal(out[2], backbone.rgb_stream(tiny_batch[0]))
        assert torch.equal(out[1], backbone.pose_stream(tiny_batch[1]))
        assert torch.equal((out[0], out[3])[0], backbone.attention(out[2], out[1])[0])


def test_labels_are_none_at_inference(model_cfg: dict, tiny_batch) -> None:
    out = _backbone(model_cfg)(*tiny_batch)
    assert out[4] is None and out[5] is None


@pytest.mark.parametrize('kind', ['spatial', 'temporal', 'spatial_temporal'])
def test_attention_types_are_a_config_option(model_cfg: dict, tiny_batch, kind: str) -> None:
    backbone = _backbone(model_cfg, attention=dict(type=kind))
    assert backbone(*tiny_batch)[0].shape == (2, 432, 4, 2, 2)


def test_mismatched_sizes_fail_before_compute_in_plain_words(model_cfg: dict) -> None:
    backbone = _backbone(model_cfg)
    with mock.patch.object(backbone.rgb_stream, 'forward') as rgb_forward:
        with pytest.raises(ValueError) as info:
            backbone(torch.randn(1, 3, 4, 64, 64), torch.rand(1, 17, 10, 16, 16))
        assert '10 pose frames for 4 RGB frames' in str(info.value)
        assert '(1, 17, 10, 16, 16)' in str(info.value)
        with pytest.raises(ValueError) as info:
            backbone(torch.randn(1, 3, 4, 64, 64), torch.rand(1, 17, 12, 32, 32))
        assert 'same height and width' in str(info.value) and '4x4' in str(info.value)
        with pytest.raises(ValueError, match='views already folded'):
            backbone(torch.randn(1, 1, 3, 4, 64, 64), torch.rand(1, 1, 17, 12, 16, 16))
    rgb_forward.assert_not_called()


def test_pretrained_streams_load_raw_and_wrapped_state_dicts(model_cfg: dict, tmp_path) -> None:
    source = _backbone(model_cfg)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    rgb_state = source.rgb_stream.state_dict()
    rgb_path = tmp_path / 'rgb.pth'
    torch.save(rgb_state, rgb_path)  # a raw state dict
    pose_state = {f'backbone.{k}': v for k, v in source.pose_stream.state_dict().items()}
    dropped = 'backbone.conv5.bn.weight'
    del pose_state[dropped]
    pose_state['cls_head.fc.weight'] = torch.zeros(3)
    pose_state['backbone.extra.weight'] = torch.zeros(3)
    pose_state['backbone.conv1_s.conv.weight'] = torch.zeros(24, 3, 1, 3, 3)  # wrong shape
    pose_path = tmp_path / 'pose.pth'
    torch.save({'state_dict': pose_state, 'meta': {'epoch': 3}}, pose_path)

    target = _backbone(model_cfg, init=False, rgb_pretrained=str(rgb_path),
                       pose_pretrained=pose_path)
    with mock.patch('epam.backbone.print_log') as log:
        target.init_weights()
    for key, value in rgb_state.items():
        assert torch.equal(target.rgb_stream.state_dict()[key], value), key
    loaded_pose = target.pose_stream.state_dict()
    assert torch.equal(loaded_pose['layer3.6.conv3.conv.weight'],
                       source.pose_stream.state_dict()['layer3.6.conv3.conv.weight'])
    assert not torch.equal(loaded_pose['conv1_s.conv.weight'],
                           source.pose_stream.state_dict()['conv1_s.conv.weight'])
    logged = '\n'.join(str(call.args[0]) for call in log.call_args_list)
    assert 'missing keys (1): conv5.bn.weight' in logged
    assert 'unexpected keys (1): extra.weight' in logged
    assert 'shape mismatch (1): conv1_s.conv.weight' in logged


def test_pretrained_must_hold_only_tensors(model_cfg: dict, tmp_path) -> None:
    path = tmp_path / 'full.pth'
    torch.save({'state_dict': {}, 'meta': _NotATensor()}, path)
    backbone = _backbone(model_cfg, init=False, rgb_pretrained=str(path))
    with pytest.raises(ValueError, match='weights_only'):
        backbone.init_weights()


def test_pretrained_path_type_is_checked(model_cfg: dict) -> None:
    with pytest.raises(TypeError, match='rgb_pretrained'):
        _backbone(model_cfg, rgb_pretrained=123)


@pytest.mark.slow
def test_ntu_six_tuple_shapes(model_cfg: dict) -> None:
    backbone = _backbone(model_cfg).eval()
    gt = torch.tensor([5, 59])
    gt_coarse = torch.tensor([0, 7])
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 16, 224, 224), torch.rand(2, 17, 48, 56, 56),
                       gt, gt_coarse)
    assert [tuple(t.shape) for t in out[:4]] == [
        (2, 432, 16, 7, 7), (2, 216, 48, 7, 7), (2, 432, 16, 7, 7), (2, 216, 48, 7, 7)]
    assert out[4] is gt and out[5] is gt_coarse
