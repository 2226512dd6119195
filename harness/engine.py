"""Run checks one after another on one context; one's exception never stops the others.

Each check runs on a model whose parameters, buffers and gradients are
restored afterwards, so checks cannot leak state into each other. A check
that raises becomes an ``error`` result for that check alone. Hangs and
crashes are not this module's business: the CLI runs it inside a supervised
child process (:mod:`epam_guard.supervisor`) that it can stop.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import torch

from . import state
from .checks import CHECKS, Check, select_checks  # noqa: F401  (select_checks: for callers)
from .errors import StopRequested, one_line
from .result import CheckResult, Status, bounded


def _error(name: str, exc: BaseException) -> CheckResult:
    return CheckResult(name, Status.ERROR, bounded(one_line(exc)),
                       details={'error': one_line(exc),
                                'traceback': traceback.format_exception(exc)[-6:]})


def run_check(ctx: Any, name: str, check: Check) -> CheckResult:
    """Run one check, with the model's state put back afterwards."""
    saved = state.copy_tensors(ctx.model)
    start = time.perf_counter()
    try:
        result = check(ctx)
    except BaseException as exc:  # SystemExit from model code included: this check's error
        if isinstance(exc, (KeyboardInterrupt, StopRequested)):
            raise  # a request to stop the run, not this check's failure
        result = _error(name, exc)
    seconds = time.perf_counter() - start
    state.restore(ctx.model, saved)
    ctx.model.zero_grad(set_to_none=True)
    ctx.model.eval()
    if not isinstance(result, CheckResult):
        result = CheckResult(name, Status.ERROR,
                             f'returned {type(result).__name__}, not a CheckResult')
    result.seconds = seconds
    return result


def run_checks(ctx: Any, names: Iterable[str] | None = None,
               available: dict[str, Check] | None = None,
               on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run the named checks (all by default) in order and return their results.

    ``on_result`` sees each result as soon as it is ready. The caller's random
    state is left as it was.
    """
    available = dict(CHECKS) if available is None else available
    names = list(available) if names is None else list(names)
    results = []
    cuda = [torch.cuda.current_device()] if ctx.device.type == 'cuda' else []
    with torch.random.fork_rng(devices=cuda):
        for name in names:
            results.append(run_check(ctx, name, available[name]))
            if on_result is not None:
                on_result(results[-1])
    return results
