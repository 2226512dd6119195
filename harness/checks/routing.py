"""Check ``routing``: labels reach the model through the head's data samples only.

CONTRACT §2, by the context's profile. Every profile: no label tensor among
the arguments of ``cls_head.loss``/``cls_head.predict`` besides their data
samples, and in predict and tensor mode no label tensor reaches any recorded
module. ``mmaction2`` lets the head take options (``Recognizer2D`` passes
``num_segs``, ``fcn_test``), and no label reaches the backbone or the neck in
any mode (the head's loss modules take them from the data samples). ``epam``
allows the head ``(feats, data_samples)`` only; in loss mode
``backbone(imgs, heatmap_imgs, gt, gt_coarse)`` with the batch's labels and
their coarse groups, and ``cls_head.forward(x)`` with the 6-tuple only; at
inference ``gt=None, gt_coarse=None``.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..contract.profiles import BACKBONE_ARGUMENTS, HEAD_SIGNATURES, LABEL_NAMES, TUPLE_NAMES, Rule
from ..model.batch import labels_of
from ..model.context import GuardContext
from ..model.passes import Pass, coarse_of, run_pass, value_context
from ..probe.describe import short, values
from ..probe.recording import Call
from ..report.result import CheckResult, Finding
from .common import finish, integer_targets, same_labels

#: Findings with the recorded call that shows each (None where no single call does).
Found = list[tuple[Optional[Call], Finding]]


def _labels_as_arguments(run: Pass, findings: Found) -> None:
    """The generic rule: the head's entry points may take options (``num_segs``,
    ``fcn_test``: MMAction2's own ``Recognizer2D`` passes them), never the labels."""
    fine = run.labels()
    per_sample = torch.tensor(labels_of(run.batch), dtype=torch.long)
    for method in HEAD_SIGNATURES:
        for call in run.recorder.of('cls_head', method):
            given = [name for name, value in call.named().items()
                     if name not in ('feats', 'data_samples') and any(
                         same_labels(value, labels) for labels in (fine, per_sample))]
            if given:
                findings.append((call, Finding(Rule.ROUTING,
                    f'{run.mode} mode: cls_head.{method} received the labels as '
                    f'{", ".join(given)}; labels reach the head only in its data samples'
                    + (f' -> {call.error}' if call.error else ''))))


def _head_calls(run: Pass, findings: Found, six_tuple: bool) -> None:
    if not six_tuple:
        _labels_as_arguments(run, findings)
        return
    for method, allowed in HEAD_SIGNATURES.items():
        for call in run.recorder.of('cls_head', method):
            extra = sorted(call.kwargs)
            if extra or len(call.args) > len(allowed):
                names = ', '.join(extra) or f'{len(call.args)} positional arguments'
                findings.append((call, Finding(Rule.ROUTING,
                    f'{run.mode} mode: cls_head.{method} received '
                    f'{names}; it takes ({", ".join(allowed)}) only'
                    + (f' -> {call.error}' if call.error else ''))))
    for call in run.recorder.of('cls_head', 'forward'):
        x = call.args[0] if len(call.args) == 1 else None
        if call.kwargs or not isinstance(x, (tuple, list)) or len(x) != len(TUPLE_NAMES):
            received = ', '.join([short(a) for a in call.args] +
                                 [f'{k}={short(v)}' for k, v in call.kwargs.items()])
            findings.append((call, Finding(Rule.ROUTING,
                f'{run.mode} mode: cls_head.forward must receive the '
                f'6-tuple only, but received ({received})'
                + (f' -> {call.error}' if call.error else ''))))


def _backbone_labels(ctx: GuardContext, run: Pass, findings: Found) -> None:
    calls = run.recorder.of('backbone')
    if len(calls) != 1:
        findings.append((None, Finding(Rule.ROUTING,
            f'{run.mode} mode: the backbone was called {len(calls)} '
            f'times, expected once ({run.error or "no error"})')))
        return
    call = calls[0]
    gt, gt_coarse = (call.argument(name, BACKBONE_ARGUMENTS.index(name)) for name in LABEL_NAMES)
    if run.mode != 'loss':
        for name, value in zip(LABEL_NAMES, (gt, gt_coarse)):
            if value is not None:
                findings.append((call, Finding(Rule.ROUTING,
                    f'{run.mode} mode: the backbone received '
                    f'{name}={values(value)}; no label may reach the '
                    'model at inference')))
        return
    fine = run.labels()
    device = run.data['inputs']['imgs'].device
    for name, value, expected in zip(LABEL_NAMES, (gt, gt_coarse), (fine, coarse_of(ctx, fine))):
        if value is None:
            findings.append((call, Finding(Rule.ROUTING,
                f'loss mode: the backbone received no {name} (called with {short(call.args)}, '
                f'{sorted(call.kwargs)}); it must receive {values(expected)}')))
        elif not same_labels(value, expected) or value.device != device:
            findings.append((call, Finding(Rule.ROUTING,
                f'loss mode: the backbone received {name}={values(value)}'
                f', expected {values(expected)} on {device.type}')))


def _label_leaks(run: Pass, findings: Found, only: tuple[str, ...] = ()) -> None:
    """Labels that reached a recorded module (of ``only``'s, where given) as an argument."""
    fine = run.labels()
    for call in run.recorder.calls:
        if call.module == 'recognizer' or (only and call.module.split('.')[0] not in only):
            continue
        for name, value in integer_targets(call, fine.numel()):
            if same_labels(value, fine):
                findings.append((call, Finding(Rule.ROUTING,
                    f'{run.mode} mode: the labels reached {call.module}.{call.method} as {name}')))


def violations(ctx: GuardContext, run: Pass) -> Found:
    """The routing findings of one pass, each with the recorded call that shows it.

    The check reports them; the trace picture (:mod:`epam_guard.trace.flow`)
    marks them on the calls, so the two cannot disagree.
    """
    found: Found = []
    epam = ctx.profile.labels_to_backbone
    if epam:
        _backbone_labels(ctx, run, found)
    _head_calls(run, found, six_tuple=epam)
    if run.mode != 'loss':
        _label_leaks(run, found)
    elif not epam:  # the head's losses take the labels; the backbone and neck never
        _label_leaks(run, found, only=('backbone', 'neck'))
    return found


def check(ctx: GuardContext) -> CheckResult:
    """Labels go where the profile says in loss mode only; the head gets no extra arguments."""
    ctx = value_context(ctx)  # what reaches whom does not depend on the crop
    runs = [run_pass(ctx, 'loss'), run_pass(ctx, 'predict'), run_pass(ctx, 'tensor')]
    findings = [finding for run in runs for _, finding in violations(ctx, run)]
    tensor = runs[2]
    for method in ('loss', 'predict'):
        if tensor.recorder.of('cls_head', method):
            findings.append(Finding(Rule.ROUTING, f'tensor mode called cls_head.{method}'))
    for run in runs:
        if run.error and not findings:
            findings.append(Finding(Rule.ROUTING, f'{run.mode} mode raised {run.error}'))
    details = {run.mode: [call.outline() for call in run.recorder.calls] for run in runs}
    where = ('the backbone in loss mode only' if ctx.profile.labels_to_backbone else
             "the head's losses only, through the data samples")
    head = ('receives no extra arguments' if ctx.profile.labels_to_backbone else
            'receives no label as an argument')
    return finish('routing', findings, f'labels reach {where}; the head {head}',
                  {'calls': details, 'contract': ctx.profile.name})
