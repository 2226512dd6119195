"""Render the recorded data flow of one loss call and one predict call.

Each call in order, indented by nesting: module, method, the arguments as they
were passed (copies taken when the call started, so a data sample does not show
a ``pred_score`` it only got later), and the output. Tuples and dicts are shown
element by element, never cut: the backbone's 6-tuple shows ``gt`` and
``gt_coarse`` with their values. Integer tensors show their values and are
marked when they carry the batch's labels, so a routing bug reads at a glance
("``gt`` went into ``cls_head.loss``"). Everything returns text; printing, and a
reader that closes the pipe early, are the CLI's business.
"""
from __future__ import annotations

from typing import Any

import torch

from ..model.context import GuardContext
from ..model.passes import Pass, coarse_of, run_pass
from ..probe.describe import SampleView, short, values
from ..probe.recording import Call

#: Label values shown per integer tensor (N*V clips of a predict batch fit).
MAX_LABELS = 64
#: Elements shown per tuple, list or dict before ``... N more``.
MAX_ELEMENTS = 32
STEP = '  '


def value_text(value: Any, fine: torch.Tensor, coarse: torch.Tensor) -> str:
    """One value on one line; integer vectors with their values and a label mark."""
    if isinstance(value, torch.Tensor) and not value.is_floating_point() and value.dim() == 1:
        mark = ''
        if value.numel() == fine.numel():
            found = value.detach().cpu()
            if torch.equal(found, fine):
                mark = '  <- labels'
            elif torch.equal(found, coarse):
                mark = '  <- coarse labels'
        return f'{values(value, MAX_LABELS)}{mark}'
    return short(value)


def _nested(value: Any) -> bool:
    """Containers shown one element per line (data-sample lists stay one line)."""
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, (list, tuple)) and bool(value) and not all(
        isinstance(v, SampleView) for v in value)


def lines_of(label: str, value: Any, indent: str, fine: torch.Tensor,
           coarse: torch.Tensor, limit: int = MAX_ELEMENTS) -> list[str]:
    """``label`` and ``value``, containers expanded one element per line below it
    (``limit`` elements each, then ``... N more``)."""
    if not _nested(value):
        return [f'{indent}{label}{value_text(value, fine, coarse)}']
    items = list(value.items()) if isinstance(value, dict) else \
        [(f'[{i}]', item) for i, item in enumerate(value)]
    lines = [f'{indent}{label}{type(value).__name__}[{len(items)}]']
    for key, item in items[:limit]:
        lines += lines_of(f'{key}: ' if isinstance(value, dict) else f'{key} ', item,
                        indent + STEP + ' ', fine, coarse, limit)
    if len(items) > limit:
        lines.append(f'{indent}{STEP} ... {len(items) - limit} more')
    return lines


def format_call(call: Call, fine: torch.Tensor, coarse: torch.Tensor) -> str:
    """``module.method(name=value, ...)`` as passed, then ``-> output`` (or ``!! error``).

    The call stays on one line (so it can be searched for); a tuple or list
    argument shows there as ``tuple[6]`` and element by element below it.
    """
    indent = STEP * (call.depth + 1)
    passed = call.passed if call.passed is not None else call.named()
    expanded = {key: value for key, value in passed.items()
                if isinstance(value, (list, tuple)) and _nested(value)}
    inline = ', '.join(
        f'{key}={type(value).__name__}[{len(value)}]' if key in expanded
        else f'{key}={value_text(value, fine, coarse)}' for key, value in passed.items())
    lines = [f'{indent}{call.module}.{call.method}({inline})']
    for key, value in expanded.items():
        lines += lines_of(f'{key}=', value, indent + STEP * 2, fine, coarse)
    inner = indent + STEP
    if call.error:
        lines.append(f'{inner}!! {call.error.splitlines()[0]}')
    elif call.returned is not None or call.output is not None:
        returned = call.returned if call.returned is not None else call.output
        lines += lines_of('-> ', returned, inner, fine, coarse)
    return '\n'.join(lines)


def format_pass(ctx: GuardContext, run: Pass) -> str:
    """A header (mode, N, V, the labels) and every recorded call of one pass."""
    fine = run.labels()
    coarse = coarse_of(ctx, fine)
    samples = len(run.batch['data_samples'])
    header = (f'{run.mode} mode ({"train" if run.mode == "loss" else "eval"}), '
              f'N={samples} V={run.views}, labels {values(fine, MAX_LABELS)}, '
              f'coarse {values(coarse, MAX_LABELS)}')
    lines = [header] + [format_call(call, fine, coarse) for call in run.recorder.calls]
    if run.error:
        lines.append(f'{STEP}!! {run.mode} mode raised {run.error.splitlines()[0]}')
    return '\n'.join(lines)


def trace(ctx: GuardContext) -> str:
    """The data flow of one loss call and one predict call, as text (nothing is printed)."""
    return '\n\n'.join(format_pass(ctx, run_pass(ctx, mode)) for mode in ('loss', 'predict'))
