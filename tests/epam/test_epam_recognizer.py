"""Tests of epam.recognizer: modes, label routing, state, and the config build."""
from __future__ import annotations

import copy

import pytest
import torch
from mmaction.registry import MODELS

from epam.hierarchy import LabelRangeError
from epam.recognizer import EPAMRecognizer

LOSS_KEYS = {f'{s}_loss_{k}' for s in ('rgb', 'pose', 'rgb_coarse', 'pose_coarse')
             for k in ('cls', 'fr')} | {'rgb_loss_tree', 'pose_loss_tree'}


def record_backbone_calls(model: EPAMRecognizer) -> list:
    calls = []
    model.backbone.register_forward_pre_hook(
        lambda m, args, kwargs: calls.append((args, kwargs)), with_kwargs=True)
    return calls


def test_builds_from_the_config(build_model) -> None:
    model = build_model()
    assert isinstance(model, EPAMRecognizer)
    assert type(model.backbone).__name__ == 'EPAMBackbone'
    assert type(model.cls_head).__name__ == 'EPAMHierarchicalHead'
    assert model.cls_head.hierarchy is model.hierarchy


def test_loss_mode(build_model, make_inputs, make_samples, model_device: str) -> None:
    model = build_model(model_device).train()
    losses = model(make_inputs(device=model_device), make_samples([7, 58]), mode='loss')
    assert set(losses) >= LOSS_KEYS
    assert {'rgb_top1_acc', 'pose_top5_acc'} <= set(losses)
    for key, value in losses.items():
        assert value.device.type == model_device
        if 'loss' in key:
            assert value.dim() == 0 and torch.isfinite(value), key


def test_predict_mode(build_model, make_inputs, make_samples, model_device: str) -> None:
    model = build_model(model_device).eval()
    with torch.no_grad():
        samples = model(make_inputs(views=5, device=model_device), make_samples([7, 58]),
                        mode='predict')
    assert len(samples) == 2
    assert set(samples[0].pred_score) == {'rgb', 'pose'}
    assert samples[0].pred_score['rgb'].shape == (60, )


def test_tensor_mode(build_model, make_inputs, model_device: str) -> None:
    model = build_model(model_device).eval()
    with torch.no_grad():
        feats = model(make_inputs(views=2, device=model_device), mode='tensor')
        scores = model(make_inputs(views=2, device=model_device), mode='tensor', stage='head')
    assert [tuple(f.shape) for f in feats[:4]] == [
        (4, 432, 4, 2, 2), (4, 216, 12, 2, 2), (4, 432, 4, 2, 2), (4, 216, 12, 2, 2)]
    assert feats[4] is None and feats[5] is None
    assert set(scores) == {'rgb', 'pose', 'rgb_coarse', 'pose_coarse'}


def test_labels_go_to_the_backbone_only_in_loss_mode(build_model, make_inputs,
                                                     make_samples) -> None:
    model = build_model()
    calls = record_backbone_calls(model)
    head_calls = []
    original_loss = model.cls_head.loss

    def loss(*args: object, **kwargs: object) -> object:
        head_calls.append(kwargs)
        return original_loss(*args, **kwargs)

    model.cls_head.loss = loss
    model.train()(make_inputs(views=2), make_samples([12, 45]), mode='loss')
    (imgs, heatmap_imgs, gt, gt_coarse), kwargs = calls[0]
    assert kwargs == {} and imgs.shape[0] == heatmap_imgs.shape[0] == 4
    assert gt.dtype == torch.long and gt.tolist() == [12, 12, 45, 45]
    assert torch.equal(gt_coarse, model.hierarchy(gt)) and gt_coarse.tolist() == [1, 1, 5, 5]
    assert head_calls == [{}]
    model.eval()
    with torch.no_grad():
        model(make_inputs(), make_samples([12, 45]), mode='predict')
        model(make_inputs(), mode='tensor')
    for args, _ in calls[1:]:
        assert args[2] is None and args[3] is None


def test_caller_inputs_are_not_mutated(build_model, make_inputs, make_samples) -> None:
    model = build_model().eval()
    inputs = make_inputs(views=3)
    originals = dict(inputs)
    copies = {k: v.clone() for k, v in inputs.items()}
    with torch.no_grad():
        first = model(inputs, mode='tensor')
        model(inputs, make_samples([1, 2]), mode='predict')
        second = model(inputs, mode='tensor')
    assert inputs.keys() == originals.keys()
    for key in inputs:
        assert inputs[key] is originals[key] and torch.equal(inputs[key], copies[key])
    assert torch.equal(first[0], second[0])


def test_predict_changes_no_parameter_or_buffer(build_model, make_inputs, make_samples,
                                                state_snapshot, assert_same_state) -> None:
    model = build_model(rectify_weight=0.5)
    model.train()(make_inputs(), make_samples([3, 33]), mode='loss')
    assert model.cls_head.rgb_prototypes[3].ne(0).any()  # training filled the memory
    model.eval()
    before = state_snapshot(model)
    with torch.no_grad():
        model(make_inputs(views=2), make_samples([3, 33]), mode='predict')
    assert_same_state(before, model)


def test_out_of_range_labels_are_rejected_before_the_backbone(build_model, make_inputs,
                                                              make_samples) -> None:
    model = build_model().train()
    calls = record_backbone_calls(model)
    for bad in ([3, 60], [-1, 0]):
        with pytest.raises(LabelRangeError, match=r'\[0, 60\)'):
            model(make_inputs(), make_samples(bad), mode='loss')
    assert calls == []


def test_reads_old_style_labels(build_model, make_inputs) -> None:
    from mmengine.structures import BaseDataElement, LabelData

    model = build_model().train()
    calls = record_backbone_calls(model)
    samples = [BaseDataElement(gt_labels=LabelData(item=torch.tensor([y]))) for y in (20, 51)]
    model(make_inputs(), samples, mode='loss')
    assert calls[0][0][2].tolist() == [20, 51]


def test_predictions_follow_a_permuted_batch(build_model, make_inputs, make_samples) -> None:
    model = build_model().eval()
    inputs = make_inputs(batch=3)
    perm = torch.tensor([2, 0, 1])
    permuted = {k: v[perm] for k, v in inputs.items()}
    with torch.no_grad():
        plain = model(inputs, make_samples([4, 5, 6]), mode='predict')
        moved = model(permuted, make_samples([6, 4, 5]), mode='predict')
    for i, j in enumerate(perm.tolist()):
        for key in ('rgb', 'pose'):
            assert torch.allclose(moved[i].pred_score[key], plain[j].pred_score[key], atol=1e-6)


def test_acc_metric_reports_the_save_best_key(build_model, make_inputs, make_samples,
                                              model_cfg: dict) -> None:
    from mmaction.evaluation import AccMetric

    model = build_model().eval()
    with torch.no_grad():
        samples = model(make_inputs(views=2), make_samples([9, 10]), mode='predict')
    metric = AccMetric()
    metric.dataset_meta = {}
    metric.process({}, [s.to_dict() for s in samples])
    results = metric.evaluate(len(samples))
    assert 'acc/RGBPose_1:1_top1' in results


def test_runs_through_the_data_preprocessor(build_model, make_samples) -> None:
    model = build_model().train()
    data = {
        'inputs': {
            'imgs': [torch.randint(0, 256, (1, 3, 4, 64, 64)).float() for _ in range(2)],
            'heatmap_imgs': [torch.rand(1, 17, 12, 16, 16) for _ in range(2)],
        },
        'data_samples': make_samples([0, 1]),
    }
    batch = model.data_preprocessor(data, training=True)
    assert batch['inputs']['imgs'].shape == (2, 1, 3, 4, 64, 64)
    losses = model(**batch, mode='loss')
    assert set(losses) >= LOSS_KEYS


def test_one_step_lowers_the_loss_and_every_parameter_gets_a_gradient(
        build_model, make_inputs, make_samples) -> None:
    model = build_model(dropout=0.0).train()
    inputs, samples = make_inputs(batch=2), make_samples([5, 40])

    def total_loss() -> torch.Tensor:
        losses = model(inputs, samples, mode='loss')
        return sum(v for k, v in losses.items() if 'loss' in k)

    before = total_loss()
    model.zero_grad()
    before.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'no gradient for {missing[:5]}'
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.01 * p.grad
    assert total_loss().item() < before.item()


def test_builds_twice_without_shared_state(model_cfg: dict, make_inputs, make_samples) -> None:
    cfg = copy.deepcopy(model_cfg)
    first, second = MODELS.build(cfg), MODELS.build(cfg)
    assert cfg == model_cfg
    assert first.hierarchy is not second.hierarchy and first.hierarchy == second.hierarchy
    first.train()(make_inputs(), make_samples([0, 59]), mode='loss')
    assert first.cls_head.rgb_prototypes.ne(0).any()
    assert second.cls_head.rgb_prototypes.eq(0).all()
    assert first.cls_head.loss_tree.membership is not second.cls_head.loss_tree.membership


def test_hierarchy_must_agree_with_the_head(model_cfg: dict) -> None:
    cfg = copy.deepcopy(model_cfg)
    cfg['hierarchy'] = dict(num_classes=60, groups=[[0, 29], [30, 59]])
    with pytest.raises(ValueError, match=r'2 groups.*num_coarse_classes=8'):
        MODELS.build(cfg)


def test_default_hierarchy_is_ntu60(model_cfg: dict) -> None:
    cfg = copy.deepcopy(model_cfg)
    del cfg['hierarchy']
    model = MODELS.build(cfg)
    assert model.hierarchy.to_config() == model_cfg['hierarchy']


def test_rejects_a_neck_and_malformed_inputs(model_cfg: dict, build_model) -> None:
    with pytest.raises(ValueError, match='no neck'):
        MODELS.build({**model_cfg, 'neck': dict(type='TPN')})
    model = build_model()
    with pytest.raises(ValueError, match=r'\(N, V, C, T, H, W\)'):
        model({'imgs': torch.randn(1, 3, 4, 64, 64),
               'heatmap_imgs': torch.rand(1, 17, 12, 16, 16)}, mode='tensor')
    with pytest.raises(ValueError, match='heatmap_imgs'):
        model({'imgs': torch.randn(1, 1, 3, 4, 64, 64)}, mode='tensor')


def test_loss_needs_one_data_sample_per_input(build_model, make_inputs, make_samples) -> None:
    model = build_model().train()
    with pytest.raises(ValueError, match='3 data samples for a batch of 2 inputs'):
        model(make_inputs(batch=2), make_samples([1, 2, 3]), mode='loss')
