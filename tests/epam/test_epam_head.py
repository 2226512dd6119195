"""Tests of epam.head: logits, auxiliary losses, prototypes, loss keys, predictions."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

from epam.head import EPAMHierarchicalHead
from epam.hierarchy import LabelHierarchy, LabelRangeError

SCORE_KEYS = {'rgb', 'pose', 'rgb_coarse', 'pose_coarse'}
AUX_LOSS_KEYS = {'rgb_loss_fr', 'pose_loss_fr', 'rgb_coarse_loss_fr', 'pose_coarse_loss_fr',
                 'rgb_loss_tree', 'pose_loss_tree'}
LOSS_KEYS = AUX_LOSS_KEYS | {'rgb_loss_cls', 'pose_loss_cls', 'rgb_coarse_loss_cls',
                             'pose_coarse_loss_cls'}
ACC_KEYS = {'rgb_top1_acc', 'rgb_top5_acc', 'pose_top1_acc', 'pose_top5_acc',
            'rgb_coarse_top1_acc', 'pose_coarse_top1_acc'}
HIERARCHY = LabelHierarchy.build(None)


class RecordingFeats(tuple):
    """The backbone's 6-tuple, remembering which indices were read."""

    read: set

    def __new__(cls, items):
        obj = super().__new__(cls, items)
        obj.read = set()
        return obj

    def __getitem__(self, index):
        self.read.add(index)
        return super().__getitem__(index)


@pytest.fixture
def make_head(model_cfg: dict):
    def make(**overrides) -> EPAMHierarchicalHead:
        cfg = copy.deepcopy(model_cfg['cls_head'])
        cfg.update(overrides)
        torch.manual_seed(0)
        head = MODELS.build(cfg)
        head.init_weights()
        head.set_hierarchy(HIERARCHY)
        return head

    return make


def make_feats(labels, views: int = 1, seed: int = 0, with_labels: bool = True):
    generator = torch.Generator().manual_seed(seed)
    gt = torch.tensor(labels).repeat_interleave(views)
    n = gt.numel()
    feats = [torch.randn(n, 432, 2, 2, 2, generator=generator),
             torch.randn(n, 216, 6, 2, 2, generator=generator),
             torch.randn(n, 432, 2, 2, 2, generator=generator),
             torch.randn(n, 216, 6, 2, 2, generator=generator)]
    if with_labels:
        return tuple(feats + [gt, HIERARCHY(gt)])
    return tuple(feats + [None, None])


def record_loss_calls(head: EPAMHierarchicalHead) -> list:
    """(attribute name, positional args) of every call of a loss submodule."""
    calls = []
    for name, module in head.named_children():
        if type(module).__name__.endswith('Loss'):
            module.register_forward_pre_hook(
                lambda m, args, name=name: calls.append((name, args)))
    return calls


def test_forward_keys_in_train_and_eval(make_head) -> None:
    head = make_head().train()
    out = head(make_feats([1, 22, 59]))
    assert set(out) == SCORE_KEYS | AUX_LOSS_KEYS
    assert out['rgb'].shape == out['pose'].shape == (3, 60)
    assert out['rgb_coarse'].shape == out['pose_coarse'].shape == (3, 8)
    head.eval()
    assert set(head(make_feats([1, 22, 59]))) == SCORE_KEYS


@pytest.mark.parametrize('rectify_weight', [0.0, 0.5])
def test_eval_forward_never_reads_labels(make_head, rectify_weight: float) -> None:
    head = make_head(rectify_weight=rectify_weight)
    head.train()(make_feats([0, 30]))  # fill some prototypes
    feats = RecordingFeats(make_feats([0, 30]))
    head.eval()(feats)
    assert 4 not in feats.read and 5 not in feats.read
    assert {0, 1} <= feats.read


def test_rectification_adds_prototype_logits(make_head) -> None:
    head = make_head(rectify_weight=0.5)
    head.train()(make_feats([0, 30, 7]))
    head.eval()
    feats = make_feats([2, 3, 4])
    rectified = head(feats)
    head.rectify_weight = 0.0
    plain = head(feats)
    expected = plain['rgb'] + 0.5 * head.loss_fr.prototype_logits(
        feats[2].flatten(2).mean(2), head.rgb_prototypes)
    assert torch.allclose(rectified['rgb'], expected, atol=1e-5)
    assert torch.equal(rectified['rgb_coarse'], plain['rgb_coarse'])


def test_prototype_update_equals_loop_reference(make_head) -> None:
    head = make_head(fr_momentum=0.75)
    head.train()
    labels = [3, 3, 17, 59, 3, 17]
    feats = make_feats(labels, seed=1)
    head.rgb_prototypes[17] = torch.randn(432)  # seen before
    before = head.rgb_prototypes.clone()
    head(feats)
    pooled = F.normalize(feats[2].flatten(2).mean(2), dim=1)
    expected = before.clone()
    for cls in set(labels):
        mean = torch.stack([pooled[i] for i, y in enumerate(labels) if y == cls]).mean(0)
        seen = bool(before[cls].ne(0).any())
        expected[cls] = 0.75 * before[cls] + 0.25 * mean if seen else mean
    assert torch.allclose(head.rgb_prototypes, expected, atol=1e-6)
    coarse_seen = head.rgb_coarse_prototypes.ne(0).any(dim=1).nonzero().flatten().tolist()
    assert coarse_seen == sorted(set(HIERARCHY(torch.tensor(labels)).tolist()))


def test_losses_get_int64_targets_and_coarse_targets_from_feats(make_head, make_samples) -> None:
    head = make_head().train()
    calls = record_loss_calls(head)
    labels = [5, 44, 12]
    feats = make_feats(labels)
    head.loss(feats, make_samples(labels))
    names = [name for name, _ in calls]
    assert names.count('loss_cls') == 4 and names.count('loss_fr') == 4
    assert names.count('loss_tree') == 2
    gt, gt_coarse = feats[4], feats[5]
    coarse_calls = 0
    for name, args in calls:
        if name == 'loss_tree':  # (fine_logits, coarse_logits, fine_labels, coarse_labels)
            assert torch.equal(args[2], gt) and args[3] is gt_coarse
            continue
        # loss_cls(scores, labels): coarse when scores have 8 columns;
        # loss_fr(features, labels, prototypes): coarse when there are 8 prototypes
        coarse = args[0].shape[1] == 8 if name == 'loss_cls' else args[2].shape[0] == 8
        coarse_calls += coarse
        target = args[1]
        assert target.dtype == torch.long and target.shape == (3, )
        if coarse:
            assert target is gt_coarse
        else:
            assert target.tolist() == labels
    assert coarse_calls == 4


def test_loss_keys_are_stable_and_finite(make_head, make_samples) -> None:
    head = make_head().train()
    losses = head.loss(make_feats([0, 59, 33]), make_samples([0, 59, 33]))
    assert set(losses) == LOSS_KEYS | ACC_KEYS
    for key, value in losses.items():
        assert value.dim() == 0, key
        assert torch.isfinite(value), key


def test_classification_losses_are_weighted(make_head, make_samples) -> None:
    head = make_head(dropout=0.0).train()
    labels = torch.tensor([4, 50])
    feats = make_feats(labels.tolist())
    losses = head.loss(feats, make_samples(labels.tolist()))
    scores = head.eval()(feats)
    for name, weight in zip(('rgb', 'pose', 'rgb_coarse', 'pose_coarse'), (1.0, 1.2, 0.5, 0.9)):
        target = feats[5] if 'coarse' in name else labels
        expected = weight * F.cross_entropy(scores[name], target)
        assert losses[f'{name}_loss_cls'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_batch_of_one_trains(make_head, make_samples) -> None:
    head = make_head().train()
    losses = head.loss(make_feats([42]), make_samples([42]))
    assert all(torch.isfinite(v) for k, v in losses.items() if 'loss' in k)


def test_loss_reads_old_style_labels(make_head) -> None:
    from mmengine.structures import BaseDataElement, LabelData

    head = make_head().train()
    samples = [BaseDataElement(gt_labels=LabelData(item=torch.tensor([y]))) for y in (8, 9)]
    assert set(head.loss(make_feats([8, 9]), samples)) == LOSS_KEYS | ACC_KEYS


def test_loss_takes_no_keyword_arguments(make_head, make_samples) -> None:
    head = make_head().train()
    feats = make_feats([1, 2])
    with pytest.raises(TypeError, match=r"\['gt'\].*6-tuple"):
        head.loss(feats, make_samples([1, 2]), gt=feats[4])
    with pytest.raises(TypeError, match='predict'):
        head.predict(feats, make_samples([1, 2]), gt_coarse=feats[5])


def test_loss_needs_the_six_tuple_with_labels(make_head, make_samples) -> None:
    head = make_head().train()
    feats = make_feats([1, 2])
    with pytest.raises(ValueError, match='6-tuple.*length 2'):
        head.loss(feats[:2], make_samples([1, 2]))
    with pytest.raises(ValueError, match='None'):
        head.loss(make_feats([1, 2], with_labels=False), make_samples([1, 2]))


def test_labels_in_feats_must_match_data_samples(make_head, make_samples) -> None:
    head = make_head().train()
    with pytest.raises(ValueError, match='differ'):
        head.loss(make_feats([1, 2]), make_samples([2, 1]))


def test_out_of_range_labels_are_rejected_before_any_loss(make_head, make_samples) -> None:
    head = make_head().train()
    calls = record_loss_calls(head)
    feats = make_feats([1, 2])
    bad = feats[:4] + (torch.tensor([1, 60]), torch.tensor([0, 0]))
    with pytest.raises(LabelRangeError, match=r'\[0, 60\).*\[60\]'):
        head.loss(bad, make_samples([1, 60]))
    with pytest.raises(LabelRangeError):
        head(bad)
    assert calls == []


def test_head_without_hierarchy_says_so(model_cfg: dict, make_samples) -> None:
    head = MODELS.build(model_cfg['cls_head']).train()
    with pytest.raises(RuntimeError, match='set_hierarchy'):
        head.loss(make_feats([1]), make_samples([1]))


def test_hierarchy_must_fit_the_head(make_head) -> None:
    head = make_head()
    with pytest.raises(ValueError, match='num_coarse_classes=8'):
        head.set_hierarchy(LabelHierarchy(num_classes=60, groups=[[0, 29], [30, 59]]))


def test_predict_sets_rgb_and_pose_scores_only(make_head, make_samples) -> None:
    head = make_head().eval()
    samples = head.predict(make_feats([3, 7], views=5), make_samples([3, 7]))
    for sample in samples:
        assert set(sample.pred_score) == {'rgb', 'pose'}
        for score in sample.pred_score.values():
            assert score.shape == (60, ) and score.sum().item() == pytest.approx(1.0)
        assert set(sample.pred_coarse_score) == {'rgb', 'pose'}
        assert sample.pred_coarse_score['rgb'].shape == (8, )
        fused = sample.pred_score['rgb'] + sample.pred_score['pose']
        assert sample.pred_label.tolist() == [int(fused.argmax())]


def test_predict_averages_clip_probabilities(make_head, make_samples) -> None:
    head = make_head().eval()
    feats = make_feats([3, 7], views=5)
    scores = head(feats)
    samples = head.predict(feats, make_samples([3, 7]))
    expected = scores['pose'].softmax(dim=1).view(2, 5, 60).mean(dim=1)
    assert torch.allclose(samples[1].pred_score['pose'], expected[1], atol=1e-6)


def test_predict_changes_no_parameter_or_buffer(make_head, make_samples, state_snapshot,
                                                assert_same_state) -> None:
    head = make_head(rectify_weight=0.5)
    head.train()(make_feats([0, 59]))
    head.eval()
    before = state_snapshot(head)
    head.predict(make_feats([0, 59]), make_samples([0, 59]))
    assert_same_state(before, head)


def test_rejects_unsupported_options(model_cfg: dict) -> None:
    cfg = copy.deepcopy(model_cfg['cls_head'])
    for overrides, match in ((dict(label_smooth_eps=0.1), 'int64'),
                             (dict(loss_components=['rgb', 'flow']), 'flow'),
                             (dict(loss_weights=[1.0]), 'one weight'),
                             (dict(fr_momentum=1.0), 'fr_momentum')):
        with pytest.raises(ValueError, match=match):
            MODELS.build({**cfg, **overrides})
