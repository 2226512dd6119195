"""Check ``structure``: the backbone's 6-tuple, the head's scores, losses, predictions.

CONTRACT §3 (arity, per-element shape/dtype/None-ness, ``gt`` echoed) and §4
(score keys in train and eval, loss keys by kind, finite scalar losses, a
prediction the config's own ``val_evaluator``, as the user's code registers
it, turns into the metric ``CheckpointHook(save_best=...)`` (or
``EarlyStoppingHook(monitor=...)``) waits for). Which score keys a prediction
holds is the evaluator's business: a fork's own ``AccMetric`` may fuse four;
when MMAction2's stock one is what drops the fused metric, the finding says so.
The observed structure is returned as JSON-able data in ``details['structure']``
for the snapshots.

Both MMAction2 APIs are accepted: ``pred_score`` (1.2) or ``pred_scores``
(1.0/1.1), and loss keys are matched by meaning (:func:`contract.loss_kind`),
so a fork's ``hierarchy_*`` losses count as hierarchy losses.
"""
from __future__ import annotations

import copy
import re
from typing import Any

import torch

from ..contract.errors import one_line
from ..contract.profiles import (
    BACKBONE_ARGUMENTS,
    FEATURE_CHANNELS,
    FEATURE_NAMES,
    FINE_SCORE_KEYS,
    LABEL_NAMES,
    LOSS_KINDS,
    POSE_STRIDE,
    PREDICTION_FIELDS,
    PREDICTION_KEYS,
    RENOVATION_OF,
    RGB_STRIDE,
    SCORE_KEYS,
    TUPLE_NAMES,
    Rule,
    loss_kind,
)
from ..model.batch import labels_of
from ..model.context import GuardContext
from ..model.passes import Pass, prediction_of, run_pass, shape_pass, value_context
from ..probe.describe import describe, short, values
from ..report.result import CheckResult, Finding
from .common import evaluate, finish, save_best_findings


def _backbone_output(run: Pass, findings: list[Finding]) -> Any:
    calls = run.recorder.of('backbone')
    if not calls:
        findings.append(Finding(Rule.BACKBONE, f'{run.mode} mode: the backbone was never called '
                                               f'({run.error or "no error raised"})'))
        return None
    return calls[0].output


def _feature_shapes(ctx: GuardContext, clips: int) -> dict[str, tuple[int, ...]]:
    recipe = ctx.recipe
    rgb_channels, pose_channels = ctx.cfg.model.cls_head.get('in_channels', FEATURE_CHANNELS)
    rgb = (clips, rgb_channels, recipe.rgb_frames, recipe.crop // RGB_STRIDE,
           recipe.crop // RGB_STRIDE)
    pose = (clips, pose_channels, recipe.pose_frames, recipe.heatmap // POSE_STRIDE,
            recipe.heatmap // POSE_STRIDE)
    return {'x_rgb': rgb, 'x_pose': pose, 'x_rgb1': rgb, 'x_pose1': pose}


def check_tuple(ctx: GuardContext, run: Pass, findings: list[Finding],
                where: str | None = None, spatial: bool = True) -> None:
    """The 6-tuple of CONTRACT §3 for one recorded pass (``where`` names it in findings).

    ``spatial=False`` compares clips, channels and frames only: for passes at a
    crop the config does not use, where a model that fixes its crop is right
    to differ (the full-size shapes are checked on their own pass).
    """
    output = _backbone_output(run, findings)
    if output is None:
        return
    where = where or f'{run.mode} mode'
    if not isinstance(output, (tuple, list)) or len(output) != len(TUPLE_NAMES):
        arity = len(output) if isinstance(output, (tuple, list)) else 1
        findings.append(Finding(Rule.BACKBONE, f'{where}: the backbone returned {arity} value(s) '
                                               f'{short(output)}; the head reads the 6-tuple '
                                               f'({", ".join(TUPLE_NAMES)})'))
        return
    clips = len(run.batch['data_samples']) * run.views
    for name, value in zip(FEATURE_NAMES, output[:len(FEATURE_NAMES)]):
        expected = _feature_shapes(ctx, clips)[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            findings.append(Finding(Rule.BACKBONE,
                f'{where}: {name} must be a float tensor, but got '
                f'{short(value)}'))
        elif tuple(value.shape)[:len(expected) - (0 if spatial else 2)] != \
                expected[:len(expected) - (0 if spatial else 2)]:
            findings.append(Finding(Rule.BACKBONE,
                f'{where}: {name} must have shape {expected}, but '
                f'got {tuple(value.shape)}'))
    for alias, original in RENOVATION_OF.items():
        a, b = output[TUPLE_NAMES.index(alias)], output[TUPLE_NAMES.index(original)]
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and (a is b or (
                not a.is_meta and a.data_ptr() == b.data_ptr() and a.stride() == b.stride())):
            findings.append(Finding(Rule.BACKBONE,
                f'{where}: {alias} is the same tensor as {original}; '
                'the feature-renovation loss needs distinct features'))
    received = run.recorder.of('backbone')[0]
    for name in LABEL_NAMES:
        sent = received.argument(name, BACKBONE_ARGUMENTS.index(name))
        echoed = output[TUPLE_NAMES.index(name)]
        if run.mode != 'loss':
            if echoed is not None:
                findings.append(Finding(Rule.BACKBONE,
                    f'{where}: {name} must be None at inference, but '
                    f'the backbone returned {values(echoed)}'))
        elif not isinstance(echoed, torch.Tensor) or not isinstance(sent, torch.Tensor) or (
                echoed.dtype != sent.dtype or echoed.device != sent.device
                or not torch.equal(echoed, sent)):
            findings.append(Finding(Rule.BACKBONE,
                f'{where}: {name} must be echoed unchanged; the '
                f'backbone received {values(sent)} and returned '
                f'{values(echoed)}'))


def check_head(ctx: GuardContext, loss: Pass, predict: Pass,
               findings: list[Finding]) -> dict[str, Any]:
    """Head scores (train/eval), loss keys and prediction fields (CONTRACT §4)."""
    described: dict[str, Any] = {}
    num_classes, num_coarse = ctx.recipe.num_classes, ctx.require_hierarchy().num_coarse_classes
    widths = {key: num_classes if key in FINE_SCORE_KEYS else num_coarse for key in SCORE_KEYS}
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
    described['prediction'] = _check_prediction(predict, widths, findings)
    return described


def _check_losses(loss: Pass, findings: list[Finding]) -> Any:
    if not isinstance(loss.output, dict):
        findings.append(Finding(Rule.HEAD, f'loss mode returned {short(loss.output)} instead of a '
                                           f'dict of losses ({loss.error or "no error raised"})'))
        return None
    by_kind: dict[str, list[str]] = {kind: [] for kind in LOSS_KINDS}
    unknown = []
    for key in sorted(loss.output):
        kind = loss_kind(key)
        if kind is not None:
            by_kind[kind].append(key)
        elif 'loss' in key:
            unknown.append(key)
    for kind, (count, _) in LOSS_KINDS.items():
        found = by_kind[kind]
        if len(found) != count:
            other = f'; loss keys of no known kind: {unknown}' if unknown else ''
            findings.append(Finding(Rule.HEAD, f'expected {count} {kind.replace("_", "-")} '
                                               f'losses, found {len(found)}: {found}{other}'))
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


def _check_prediction(predict: Pass, widths: dict[str, int], findings: list[Finding]) -> Any:
    """The prediction field and each score's width (which keys it holds, the evaluator judges)."""
    samples = predict.output
    if not isinstance(samples, (list, tuple)) or not samples:
        findings.append(Finding(Rule.HEAD, f'predict returned {short(samples)} instead of data '
                                           f'samples ({predict.error or "no error raised"})'))
        return None
    field, score = prediction_of(samples[0])
    if field is None:
        findings.append(Finding(Rule.HEAD,
            f'predict set none of {" / ".join(PREDICTION_FIELDS)} (MMAction2 1.2 / 1.0-1.1) '
            f'in its data samples; it set {sorted(samples[0].keys())}'))
    elif isinstance(score, dict):
        for key, value in score.items():
            width = widths.get(key)
            if width is not None and (not isinstance(value, torch.Tensor)
                                      or tuple(value.shape) != (width,)):
                findings.append(Finding(Rule.HEAD,
                    f'{field}[{key!r}] must have shape ({width},), but got {short(value)}'))
    elif not isinstance(score, torch.Tensor) or tuple(score.shape) != (widths['rgb'],):
        findings.append(Finding(Rule.HEAD,
            f'{field} must be a ({widths["rgb"]},) score tensor or a dict of scores by stream, '
            f'but got {short(score)}'))
    return {'samples': len(samples), 'fields': sorted(samples[0].keys()),
            'pred_score': describe(score)}


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def check_metrics(ctx: GuardContext, predict: Pass, findings: list[Finding]) -> dict[str, Any]:
    """The config's val_evaluator on the predictions; save_best must name what it produces."""
    metrics, why = None, ''
    samples = predict.output
    if ctx.cfg.get('val_evaluator') is None:
        why = ' (the config has no val_evaluator)'
    elif not isinstance(samples, (list, tuple)) or not samples:
        why = ' (predict gave no data samples to evaluate)'
    else:
        try:
            metrics = evaluate(ctx.cfg, list(samples), labels_of(predict.batch))
        except Exception as exc:  # the metric could not read what predict wrote
            why = f' (it raised {one_line(exc, location=False)})'
            findings.append(Finding(Rule.HEAD,
                f"the config's val_evaluator cannot evaluate the predictions: "
                f'{one_line(exc)}; validation would stop there'))
    waiting = save_best_findings(ctx.cfg, metrics, why)
    cause = stock_fusion_cause(ctx.cfg, samples) if waiting and metrics is not None else None
    for finding in waiting:
        key = re.search(r"save_best=('[^']*RGBPose[^']*')", finding.message)
        if cause and key:  # the cause leads: the metric list is long and says less
            finding = Finding(finding.rule, f'CheckpointHook(save_best={key.group(1)}) waits for '
                                            f'a metric the config\'s val_evaluator does not '
                                            f'produce: {cause} (training dies with KeyError '
                                            'after its first validation)')
        findings.append(finding)
    return {key: _plain(value) for key, value in (metrics or {}).items()}


def stock_fusion_cause(cfg: Any, samples: Any) -> str | None:
    """Why MMAction2's own ``AccMetric`` reports no ``RGBPose`` metric, when that is why.

    Its ``compute_metrics`` fuses the ``rgb`` and ``pose`` scores only when the
    score dict has exactly those two keys; with more (coarse scores) it
    reports each key alone. A fork's own registered ``AccMetric`` is not
    MMAction2's and is not blamed.
    """
    from mmaction.evaluation.metrics.acc_metric import AccMetric
    from mmengine.evaluator import Evaluator
    from mmengine.registry import DefaultScope

    _, score = prediction_of(samples[0])
    if not isinstance(score, dict) or not set(PREDICTION_KEYS) <= set(score) or \
            len(score) == len(PREDICTION_KEYS):
        return None
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmaction')):
        metrics = Evaluator(copy.deepcopy(cfg.val_evaluator)).metrics
    if not any(type(metric) is AccMetric for metric in metrics):
        return None
    from mmaction import __version__

    return (f"MMAction2 {__version__}'s own AccMetric fuses rgb and pose into RGBPose_* only "
            f'when the score dict has exactly the keys {" and ".join(PREDICTION_KEYS)}, and '
            f'predict wrote {len(score)} ({", ".join(score)}): keep only those two in the '
            'prediction, or register an AccMetric of your own that fuses them')


def check(ctx: GuardContext) -> CheckResult:
    """Backbone 6-tuple, head scores, loss keys and predictions have the contract's shape.

    At ``ntu`` size the values (echoed labels, losses, the evaluator) come from
    passes at the config's clip lengths with space shrunk, and the full-size
    shapes from a predict pass on the ``meta`` device (no arithmetic).
    """
    findings: list[Finding] = []
    values = value_context(ctx)
    loss = run_pass(values, 'loss')
    predict = run_pass(values, 'predict')
    spatial = values is ctx  # at ntu size the full-size shapes come from their own pass
    check_tuple(values, loss, findings, spatial=spatial)
    check_tuple(values, predict, findings, spatial=spatial)
    structure: dict[str, Any] = {
        'backbone': {run.mode: describe(run.recorder.of('backbone')[0].output)
                     if run.recorder.of('backbone') else None for run in (loss, predict)},
        **check_head(values, loss, predict, findings),
    }
    details: dict[str, Any] = {}
    verdict = ('backbone returns the 6-tuple; head scores, losses and predictions have the '
               'contract shape; the evaluator produces the metric save_best waits for')
    if values is not ctx:
        full, why = shape_pass(ctx, 'predict')
        check_tuple(ctx, full, findings, where=f'predict mode at {ctx.recipe.size} size')
        structure['backbone'][f'predict at {ctx.recipe.size} size'] = (
            describe(full.recorder.of('backbone')[0].output)
            if full.recorder.of('backbone') else None)
        r = values.recipe
        details['sizes'] = (f'values at {r.rgb_frames}x{r.crop}x{r.crop} RGB clips (the '
                            f'config\'s clip lengths, space shrunk); {ctx.recipe.size}-size '
                            'shapes ' + (f'from a real pass: {why}' if why else
                                         'from a shape-only pass on the meta device'))
        verdict += f'; {details["sizes"]}'
    metrics = check_metrics(values, predict, findings) if predict.error is None else {}
    # A pass that raised before the backbone returned explains every missing piece after
    # it: say it first. One that raised later follows from the findings above, if any.
    first: list[Finding] = []
    last: list[Finding] = []
    for run in (loss, predict):
        if run.error:
            calls = run.recorder.of('backbone')
            returned = bool(calls) and calls[0].error is None
            where = first if not returned else last if not findings else None
            if where is not None:
                where.append(Finding(Rule.ROUTING, f'{run.mode} mode raised {run.error}'))
    return finish('structure', first + findings + last, verdict,
                  {'structure': structure, 'metrics': metrics, **details,
                   'errors': {'loss': loss.error, 'predict': predict.error}})
