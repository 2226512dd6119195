"""Render the recorded data flow of one loss call and one predict call.

Each call in order, indented by nesting: module, method, argument names with
shapes and dtypes, and the output. Integer tensors show their values and are
marked when they carry the batch's labels, so a routing bug reads at a glance
("``gt`` went into ``cls_head.loss``").
"""
from __future__ import annotations

from typing import Any

import torch

from .checks.common import Pass, coarse_of, run_pass, show
from .context import GuardContext
from .describe import short
from .recording import Call

MAX_LINE = 160


def _value(value: Any, fine: torch.Tensor, coarse: torch.Tensor) -> str:
    if isinstance(value, torch.Tensor) and not value.is_floating_point() and value.dim() == 1:
        mark = ''
        if value.numel() == fine.numel():
            if torch.equal(value.detach().cpu(), fine):
                mark = '  <- labels'
            elif torch.equal(value.detach().cpu(), coarse):
                mark = '  <- coarse labels'
        return f'{show(value)}{mark}'
    text = short(value)
    return text if len(text) <= MAX_LINE // 2 else text[:MAX_LINE // 2 - 3] + '...'


def format_call(call: Call, fine: torch.Tensor, coarse: torch.Tensor) -> str:
    """``module.method(name=shape dtype, ...) -> output`` for one call."""
    arguments = ', '.join(f'{name}={_value(value, fine, coarse)}'
                          for name, value in call.named().items())
    line = f'{"  " * (call.depth + 1)}{call.module}.{call.method}({arguments})'
    if call.error:
        return f'{line}\n{"  " * (call.depth + 2)}!! {call.error.splitlines()[0]}'
    if call.output is not None:
        line += f'\n{"  " * (call.depth + 2)}-> {_value(call.output, fine, coarse)}'
    return line


def format_pass(ctx: GuardContext, run: Pass) -> str:
    fine = run.labels()
    coarse = coarse_of(ctx, fine)
    samples = len(run.batch['data_samples'])
    header = (f'{run.mode} mode ({"train" if run.mode == "loss" else "eval"}), '
              f'N={samples} V={run.views}, labels {show(fine)}, coarse {show(coarse)}')
    lines = [header] + [format_call(call, fine, coarse) for call in run.recorder.calls]
    if run.error:
        lines.append(f'  !! {run.mode} mode raised {run.error.splitlines()[0]}')
    return '\n'.join(lines)


def trace(ctx: GuardContext) -> str:
    """The data flow of one loss call and one predict call, as text."""
    return '\n\n'.join(format_pass(ctx, run_pass(ctx, mode)) for mode in ('loss', 'predict'))
