"""The recorded data flow of one loss and one predict call, as data for a picture.

Made from the same recorded passes the checks read (:func:`~epam_guard.model.passes.run_pass`,
cached per model and recipe), never drawn per model: each recorded call is a
node (the module's dotted name and its own class, so a fork's modules appear
under their names), its parent the call it was made from; the arguments and
the output are the lines :mod:`epam_guard.trace.calls` prints, each marked when it
carries the labels or their coarse groups. Routing's findings are attached to
the call that shows them (:func:`epam_guard.checks.routing.violations`), and a
prediction that reads the labels to the call where they got in
(:func:`epam_guard.trace.label_reach.label_readers`). The
result is JSON (it crosses from the model's process to the CLI, which draws it
with :mod:`epam_guard.report.picture`).
"""
from __future__ import annotations

from typing import Any

import torch

from ..checks.routing import violations
from ..model.context import GuardContext
from ..model.passes import Pass, coarse_of, run_pass, value_context
from ..probe.describe import SampleView, as_passed, short, values
from ..probe.recording import Call
from .calls import MAX_LABELS, lines_of, value_text
from .label_reach import label_readers

#: Elements of a tuple, list or dict shown per argument in the picture.
PICTURE_ELEMENTS = 8
#: Marks :mod:`epam_guard.trace.calls` appends to a label-carrying line.
MARKS = {'  <- labels': 'labels', '  <- coarse labels': 'coarse labels'}


def _marked(text: str) -> dict[str, Any]:
    for suffix, mark in MARKS.items():
        if text.endswith(suffix):
            return {'text': text[:-len(suffix)], 'mark': mark}
    return {'text': text, 'mark': None}


def _value_lines(label: str, value: Any, fine: torch.Tensor,
                 coarse: torch.Tensor) -> list[dict[str, Any]]:
    return [_marked(line) for line in lines_of(label, value, '', fine, coarse,
                                             PICTURE_ELEMENTS)]


def _argument_lines(name: str, value: Any, fine: torch.Tensor,
                    coarse: torch.Tensor) -> list[dict[str, Any]]:
    """A tuple or list argument (the 6-tuple) element by element, anything else on one line."""
    if isinstance(value, (tuple, list)) and any(not isinstance(v, SampleView) for v in value):
        return _value_lines(f'{name}=', value, fine, coarse)
    return [_marked(f'{name}={value_text(value, fine, coarse)}')]


def _class_of(model: Any, module: str) -> str:
    if module == 'recognizer':
        return type(model).__name__
    try:
        return type(model.get_submodule(module)).__name__
    except AttributeError:
        return '?'


def _node(model: Any, module: str, method: str, depth: int,
          passed: dict[str, Any], returned: Any, error: str | None, fine: torch.Tensor,
          coarse: torch.Tensor) -> dict[str, Any]:
    args = [line for name, value in passed.items()
            for line in _argument_lines(name, value, fine, coarse)]
    output = [] if error or returned is None else _value_lines('-> ', returned, fine, coarse)
    return {'module': module, 'class': _class_of(model, module), 'method': method,
            'depth': depth, 'args': args, 'returned': output, 'error': error,
            'violations': []}


def pass_graph(ctx: GuardContext, run: Pass) -> dict[str, Any]:
    """One pass as nodes in call order: the preprocessor, the recognizer, every recorded call."""
    model = ctx.model
    fine = run.labels()
    coarse = coarse_of(ctx, fine)
    # The preprocessor's call is the batch the guard made: per input, N samples of a shape.
    inputs = ', '.join(f'{key}: {len(value)} x {short(value[0])}'
                       if isinstance(value, list) and value else f'{key}: {short(value)}'
                       for key, value in run.batch['inputs'].items())
    # The samples as the batch holds them: predict writes its predictions into the
    # preprocessed copies, and the recognizer's call should show what it was given.
    first = {'inputs': f'{{{inputs}}}', 'data_samples': as_passed(run.batch['data_samples'])}
    preprocessor = getattr(model, 'data_preprocessor', None)
    nodes = []
    if preprocessor is not None:
        nodes.append(_node(model, 'data_preprocessor', 'forward', 0,
                           {**first, 'training': run.mode == 'loss'}, run.data['inputs'],
                           None, fine, coarse))
    nodes.append(_node(model, 'recognizer', 'forward', 0,
                       {**run.data, 'data_samples': first['data_samples'], 'mode': run.mode},
                       None, run.error, fine, coarse))
    index: dict[int, int] = {}
    for call in run.recorder.calls:
        index[id(call)] = len(nodes)
        nodes.append(_node(model, call.module, call.method, call.depth + 1,
                           call.passed if call.passed is not None else call.named(),
                           call.returned if call.returned is not None else call.output,
                           call.error, fine, coarse))
    unplaced = []
    for shown_by, finding in violations(ctx, run) + label_readers(ctx, run):
        entry = {'rule': finding.rule.value, 'title': str(finding.rule),
                 'message': finding.message}
        target = _placed(shown_by, index)
        if target is None:
            unplaced.append(entry)
        else:
            nodes[target]['violations'].append(entry)
    samples = len(run.batch['data_samples'])
    return {
        'mode': run.mode, 'training': run.mode == 'loss', 'samples': samples,
        'views': run.views, 'labels': values(fine, MAX_LABELS),
        'coarse': values(coarse, MAX_LABELS),
        'error': run.error, 'nodes': nodes, 'violations': unplaced,
    }


def _placed(call: Call | None, index: dict[int, int]) -> int | None:
    return None if call is None else index.get(id(call))


def flow(ctx: GuardContext) -> dict[str, Any]:
    """The loss and the predict pass the checks share, ready for
    :mod:`epam_guard.report.picture`."""
    ctx = value_context(ctx)  # the passes routing and the other value checks read
    return {'config': str(ctx.settings.config), 'device': str(ctx.device),
            'passes': [pass_graph(ctx, run_pass(ctx, mode)) for mode in ('loss', 'predict')]}
