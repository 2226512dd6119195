"""``epam_guard.probe.recording`` on tiny modules: what is recorded, and that nothing is left
behind."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from epam_guard.probe.describe import SampleView
from epam_guard.probe.recording import Call, CallRecorder, _bind, default_targets, record


class CrossLoss(nn.Module):
    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(args[0], args[1])


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor, gt: torch.Tensor | None = None) -> tuple:
        return self.stem(x), gt


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.loss_cls = CrossLoss()

    def forward(self, x: tuple) -> torch.Tensor:
        return x[0]

    def loss(self, feats: tuple, data_samples: list) -> dict:
        return {'loss': self.loss_cls(self(feats), feats[1])}

    def predict(self, feats: tuple, data_samples: list) -> list:
        for sample in data_samples:  # writes into what it was given, as MMAction2 heads do
            sample.set_field(torch.zeros(3), 'pred_score')
        return data_samples


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.cls_head = Head()

    def extract_feat(self, inputs: dict, gt: torch.Tensor | None = None) -> tuple:
        return self.backbone(inputs['x'], gt=gt)

    def forward(self, inputs: dict, labels: torch.Tensor, mode: str) -> object:
        feats = self.extract_feat(inputs, gt=labels if mode == 'loss' else None)
        return self.cls_head.loss(feats, []) if mode == 'loss' else \
            self.cls_head.predict(feats, inputs['samples'])


def run_loss(model: Model) -> dict:
    return model({'x': torch.ones(2, 3)}, torch.tensor([1, 2]), 'loss')


def test_calls_are_recorded_in_order_with_names_depth_and_outputs():
    model = Model()
    with CallRecorder(model) as recorder:
        run_loss(model)
    order = [(c.module, c.method, c.depth) for c in recorder.calls]
    assert order == [('recognizer', 'extract_feat', 0), ('backbone', 'forward', 1),
                     ('backbone.stem', 'forward', 2), ('cls_head', 'loss', 0),
                     ('cls_head', 'forward', 1), ('cls_head.loss_cls', 'forward', 1)]
    backbone = recorder.of('backbone')[0]
    assert backbone.outline() == 'backbone.forward(x, gt)'
    assert torch.equal(backbone.argument('gt'), torch.tensor([1, 2]))
    assert backbone.output[0].shape == (2, 4)
    assert [name for name, _ in recorder.of('cls_head.loss_cls')[0].tensors()] == \
        ['args[0]', 'args[1]']
    assert [c.module for c in recorder.under('backbone')] == ['backbone', 'backbone.stem']


def test_a_call_that_raises_is_recorded_with_its_error_and_the_nesting_unwinds():
    model = Model()
    feats = (torch.ones(2, 4), torch.zeros(3, dtype=torch.long))  # 2 scores, 3 targets
    recorder, result, error = record(model, lambda: model.cls_head.loss(feats, []))
    assert result is None and error is not None and 'batch_size' in error
    loss = recorder.of('cls_head', 'loss')[0]
    assert loss.error == error
    assert recorder.of('cls_head', 'forward')[0].error is None  # it returned
    assert recorder.of('cls_head.loss_cls')[0].error == error  # the error went through it
    assert recorder._open == []


def test_hooked_calls_that_raise_are_marked_when_the_run_ends():
    model = Model()
    recorder, _, error = record(model, lambda: model.backbone(torch.ones(2, 5)))
    assert error is not None
    assert [c.error for c in recorder.calls] == [error, error]  # backbone and its stem
    assert recorder._open == []


def test_exit_removes_every_wrapper_and_hook():
    model = Model()
    with CallRecorder(model):
        assert 'extract_feat' in vars(model) and 'loss' in vars(model.cls_head)
    assert 'extract_feat' not in vars(model)
    assert not {'forward', 'loss', 'predict'} & set(vars(model.cls_head))
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks
    with CallRecorder(model) as again:
        run_loss(model)
    assert len(again.calls) == 6  # a second recorder sees everything once


def test_exit_puts_back_instance_level_methods_the_model_set_itself():
    model = Model()
    own_extract = model.extract_feat  # a bound method stored on the instance
    model.extract_feat = own_extract  # type: ignore[method-assign]  # what the test is about

    def own_forward(x: tuple) -> torch.Tensor:
        return x[0] * 2

    model.cls_head.forward = own_forward  # type: ignore[method-assign]
    with CallRecorder(model) as recorder:
        run_loss(model)
    assert vars(model)['extract_feat'] is own_extract
    assert vars(model.cls_head)['forward'] is own_forward
    head_forward = recorder.of('cls_head', 'forward')[0]  # the model's own method, observed
    assert torch.equal(head_forward.output, 2 * head_forward.argument('x')[0])


def test_nested_recorders_restore_in_reverse_order():
    model = Model()
    with CallRecorder(model) as outer, CallRecorder(model) as inner:
        run_loss(model)
    assert 'extract_feat' not in vars(model)
    assert len(outer.of('recognizer', 'extract_feat')) == 1
    assert len(inner.of('recognizer', 'extract_feat')) == 1


def test_data_samples_are_kept_as_they_were_passed():
    from mmaction.structures import ActionDataSample

    model = Model()
    sample = ActionDataSample().set_gt_label(5)
    with CallRecorder(model) as recorder:
        model.cls_head.predict((torch.ones(1, 4),), [sample])
    predict = recorder.of('cls_head', 'predict')[0]
    assert predict.passed['data_samples'] == [
        SampleView('ActionDataSample', ('gt_label',), (('gt_label', (5,)),))]
    assert predict.returned[0].fields == ('gt_label', 'pred_score')
    assert 'pred_score' in predict.args[1][0]  # the live object moved on


def test_integer_tensors_are_copied_when_passed():
    model = Model()
    gt = torch.tensor([1, 2])
    with CallRecorder(model) as recorder:
        model.extract_feat({'x': torch.ones(2, 3)}, gt=gt)
        gt.add_(10)
    assert recorder.of('backbone')[0].passed['gt'].tolist() == [1, 2]
    assert recorder.of('backbone')[0].argument('gt').tolist() == [11, 12]


def test_bind_flattens_catch_all_parameters():
    def f(a: int, *rest: int, **extra: int) -> None:
        pass

    assert _bind(f, (1, 2, 3), {'gt': 4}) == {'a': 1, 'rest[0]': 2, 'rest[1]': 3, 'gt': 4}
    assert _bind(f, (), {}) is None  # does not bind: the caller falls back to raw arguments
    call = Call('m', 'forward', (1, 2), {'k': 3}, None)
    assert call.named() == {'args[0]': 1, 'args[1]': 2, 'k': 3}
    assert call.argument('k') == 3 and call.argument('x', position=1) == 2


def test_default_targets_are_the_backbone_its_children_and_the_head_losses():
    assert set(default_targets(Model())) == {'backbone', 'backbone.stem', 'cls_head.loss_cls'}
    assert default_targets(nn.Linear(1, 1)) == {}


def test_a_neck_between_backbone_and_head_is_recorded_too():
    model = Model()
    model.neck = nn.Identity()
    assert set(default_targets(model)) == {'backbone', 'backbone.stem', 'neck',
                                           'cls_head.loss_cls'}
    with CallRecorder(model) as recorder:
        model.neck(torch.ones(1))
    assert [(c.module, c.method) for c in recorder.calls] == [('neck', 'forward')]


def test_a_failure_while_entering_leaves_nothing_behind(monkeypatch):
    model = Model()
    recorder = CallRecorder(model)
    monkeypatch.setattr(recorder, '_hook', lambda *a: (_ for _ in ()).throw(RuntimeError('x')))
    with pytest.raises(RuntimeError):
        recorder.__enter__()
    assert 'extract_feat' not in vars(model) and 'loss' not in vars(model.cls_head)
