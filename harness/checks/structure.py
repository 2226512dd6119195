"""Check ``structure``: the backbone's 6-tuple, the head's scores, losses, predictions.

CONTRACT §3 (arity, per-element shape/dtype/None-ness, ``gt`` echoed) and §4
(score keys in train and eval, loss keys, finite scalar losses, a prediction
AccMetric understands). The observed structure is returned as JSON-able data
in ``details['structure']`` for the snapshots.
"""
from __future__ import annotations

from typing import Any

import torch

from ..batch import POSE_STRIDE, RGB_STRIDE
from ..context import GuardContext
from ..contract import Rule
from ..describe import describe, short
from ..result import CheckResult, Finding, conclude
from .common import Pass, run_pass, show

NAMES = ('x_rgb', 'x_pose', 'x_rgb1', 'x_pose1', 'gt', 'gt_coarse')
SCORE_KEYS = ('rgb', 'pose', 'rgb_coarse', 'pose_coarse')
LOSS_GROUPS = {'cls': 4, 'fr': 4, 'tree': 2}


def _backbone_output(run: Pass, findings: list[Finding]) -> Any:
    calls = run.recorder.of('backbone')
    if not calls:
        findings.append(Finding(Rule.BACKBONE, f'{run.mode} mode: the backbone was never called '
                                               f'({run.error or "no error raised"})'))
        return None
    return calls[0].output


def _feature_shapes(ctx: GuardContext, clips: int) -> dict[str, tuple[int, ...]]:
    recipe = ctx.recipe
    rgb_channels, pose_channels = ctx.cfg.model.cls_head.get('in_channels', [432, 216])
    rgb = (clips, rgb_channels, recipe.rgb_frames, recipe.crop // RGB_STRIDE,
           recipe.crop // RGB_STRIDE)
    pose = (clips, pose_channels, recipe.pose_frames, recipe.heatmap // POSE_STRIDE,
            recipe.heatmap // POSE_STRIDE)
    return {'x_rgb': rgb, 'x_pose': pose, 'x_rgb1': rgb, 'x_pose1': pose}


def check_tuple(ctx: GuardContext, run: Pass, findings: list[Finding]) -> None:
    """The 6-tuple of CONTRACT §3 for one recorded pass."""
    output = _backbone_output(run, findings)
    if output is None:
        return
    where = f'{run.mode} mode'
    if not isinstance(output, (tuple, list)) or len(output) != len(NAMES):
        arity = len(output) if isinstance(output, (tuple, list)) else 1
        findings.append(Finding(Rule.BACKBONE, f'{where}: the backbone returned {arity} value(s) '
                                               f'{short(output)}; the head reads the 6-tuple '
                                               f'({", ".join(NAMES)})'))
        return
    clips = len(run.batch['data_samples']) * run.views
    for name, value in zip(NAMES[:4], output[:4]):
        expected = _feature_shapes(ctx, clips)[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            findings.append(Finding(Rule.BACKBONE,
                f'{where}: {name} must be a float tensor, but got '
                f'{short(value)}'))
        elif tuple(value.shape) != expected:
            findings.append(Finding(Rule.BACKBONE,
                f'{where}: {name} must have shape {expected}, but '
                f'got {tuple(value.shape)}'))
    for alias, original in (('x_rgb1', 'x_rgb'), ('x_pose1', 'x_pose')):
        a, b = output[NAMES.index(alias)], output[NAMES.index(original)]
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and (
                a is b or (a.data_ptr() == b.data_ptr() and a.stride() == b.stride())):
            findings.append(Finding(Rule.BACKBONE,
                f'{where}: {alias} is the same tensor as {original}; '
                'the feature-renovation loss needs distinct features'))
    received = run.recorder.of('backbone')[0]
    for index, name in ((4, 'gt'), (5, 'gt_coarse')):
        sent, echoed = received.argument(name, index - 2), output[index]
        if run.mode != 'loss':
            if echoed is not None:
                findings.append(Finding(Rule.BACKBONE,
                    f'{where}: {name} must be None at inference, but '
                    f'the backbone returned {show(echoed)}'))
        elif not isinstance(echoed, torch.Tensor) or not isinstance(sent, torch.Tensor) or (
                echoed.dtype != sent.dtype or echoed.device != sent.device
                or not torch.equal(echoed, sent)):
            findings.append(Finding(Rule.BACKBONE,
                f'{where}: {name} must be echoed unchanged; the '
                f'backbone received {show(sent)} and returned '
                f'{show(echoed)}'))


def check_head(ctx: GuardContext, loss: Pass, predict: Pass,
               findings: list[Finding]) -> dict[str, Any]:
    """Head scores (train/eval), loss keys and prediction fields (CONTRACT §4)."""
    described: dict[str, Any] = {}
    num_classes, num_coarse = ctx.recipe.num_classes, ctx.hierarchy.num_coarse_classes
    widths = {'rgb': num_classes, 'pose': num_classes,
              'rgb_coarse': num_coarse, 'pose_coarse': num_coarse}
    for run, phase in ((loss, 'train'), (predict, 'eval')):
        calls = run.recorder.of('cls_head', 'forward')
        scores = calls[0].output if calls else None
        if not isinstance(scores, dict):
            findings.append(Finding(Rule.HEAD, f'{phase}: cls_head.forward must return a dict of '
                                               f'scores, but returned {short(scores)}'))
            continue
        described[f'scores_{phase}'] = describe(scores)
        for key in SCORE_KEYS:
            score = scores.get(key)
            if not isinstance(score, torch.Tensor) or score.shape[-1:] != (widths[key],):
                findings.append(Finding(Rule.HEAD,
                    f'{phase}: score {key!r} must have {widths[key]} '
                    f'columns, but got {short(score)}'))
        if phase == 'eval' and any('loss' in key for key in scores):
            findings.append(Finding(Rule.HEAD,
                'eval: cls_head.forward computed losses at inference '
                f'({sorted(k for k in scores if "loss" in k)})'))
    described['losses'] = _check_losses(loss, findings)
    described['prediction'] = _check_prediction(predict, num_classes, findings)
    return described


def _check_losses(loss: Pass, findings: list[Finding]) -> Any:
    if not isinstance(loss.output, dict):
        findings.append(Finding(Rule.HEAD, f'loss mode returned {short(loss.output)} instead of a '
                                           f'dict of losses ({loss.error or "no error raised"})'))
        return None
    for group, count in LOSS_GROUPS.items():
        found = sorted(k for k in loss.output if 'loss' in k and group in k.split('_'))
        if len(found) != count:
            findings.append(Finding(Rule.HEAD, f'expected {count} {group} losses, found '
                                               f'{len(found)}: {found}'))
    for key, value in loss.output.items():
        if 'loss' not in key:
            continue
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            findings.append(Finding(Rule.HEAD, f'loss {key!r} must be a scalar tensor, but got '
                                               f'{short(value)}'))
        elif not torch.isfinite(value).all():
            findings.append(Finding(Rule.HEAD, f'loss {key!r} is not finite ({value.item()})'))
    if not any('acc' in key for key in loss.output):
        findings.append(Finding(Rule.HEAD, 'loss() reports no top-k accuracy'))
    return describe({k: loss.output[k] for k in sorted(loss.output)})


def _check_prediction(predict: Pass, num_classes: int, findings: list[Finding]) -> Any:
    samples = predict.output
    if not isinstance(samples, (list, tuple)) or not samples:
        findings.append(Finding(Rule.HEAD, f'predict returned {short(samples)} instead of data '
                                           f'samples ({predict.error or "no error raised"})'))
        return None
    score = samples[0].get('pred_score') if hasattr(samples[0], 'get') else None
    if not isinstance(score, dict) or set(score) != {'rgb', 'pose'}:
        findings.append(Finding(Rule.HEAD,
            f'pred_score must be a dict with exactly the keys rgb and '
            f'pose (AccMetric reports acc/RGBPose_1:1_top1 only then), '
            f'but got {short(score)}'))
    else:
        for key, value in score.items():
            if tuple(value.shape) != (num_classes,):
                findings.append(Finding(Rule.HEAD,
                    f'pred_score[{key!r}] must have shape '
                    f'({num_classes},), but got {tuple(value.shape)}'))
    return {'samples': len(samples), 'fields': sorted(samples[0].keys()),
            'pred_score': describe(score)}


def check(ctx: GuardContext) -> CheckResult:
    """Backbone 6-tuple, head scores, loss keys and predictions have the contract's shape."""
    findings: list[Finding] = []
    loss = run_pass(ctx, 'loss')
    predict = run_pass(ctx, 'predict')
    check_tuple(ctx, loss, findings)
    check_tuple(ctx, predict, findings)
    structure: dict[str, Any] = {
        'backbone': {run.mode: describe(run.recorder.of('backbone')[0].output)
                     if run.recorder.of('backbone') else None for run in (loss, predict)},
        **check_head(ctx, loss, predict, findings),
    }
    for run in (loss, predict):
        if run.error and not findings:
            findings.append(Finding(Rule.ROUTING, f'{run.mode} mode raised {run.error}'))
    return conclude('structure', findings,
                    'backbone returns the 6-tuple; head scores, losses and predictions '
                    'have the contract shape', {'structure': structure,
                                                'errors': {'loss': loss.error,
                                                           'predict': predict.error}})
