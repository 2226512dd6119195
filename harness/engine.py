"""Run checks in isolation: one's exception or hang never stops the others.

Each check runs in a worker thread bounded by the settings' timeout, on a
model whose parameters, buffers and gradients are restored afterwards, so
checks cannot leak state into each other. A check that raises becomes an
``error`` result for that check alone; one that hangs becomes an ``error``
saying so, and the checks after it get a freshly built model.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable

import torch

from . import state
from .checks import CHECKS, Check, select_checks  # noqa: F401  (re-exported for callers)
from .context import GuardContext
from .errors import one_line
from .result import CheckResult, Status


def _error(name: str, exc: BaseException) -> CheckResult:
    return CheckResult(name, Status.ERROR, one_line(exc),
                       details={'traceback': traceback.format_exception(exc)[-6:]})


class _Worker(threading.Thread):
    def __init__(self, check: Check, ctx: GuardContext) -> None:
        super().__init__(daemon=True)
        self.check, self.ctx = check, ctx
        self.result: CheckResult | None = None
        self.exc: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.check(self.ctx)
        except BaseException as exc:  # reported as this check's error, never re-raised
            self.exc = exc


def run_check(ctx: GuardContext, name: str, check: Check) -> CheckResult:
    """Run one check with state restored afterwards and a time bound."""
    saved = state.snapshot(ctx.model)
    start = time.perf_counter()
    worker = _Worker(check, ctx)
    worker.start()
    worker.join(ctx.settings.timeout)
    seconds = time.perf_counter() - start
    if worker.is_alive():
        # The thread cannot be killed; leave it the old model and go on with a new one.
        ctx.model = ctx.fresh_model()
        return CheckResult(name, Status.ERROR,
                           f'did not finish within {ctx.settings.timeout:g} s (hung?); the '
                           'other checks ran on a fresh model', seconds=seconds)
    state.restore(ctx.model, saved)
    ctx.model.zero_grad(set_to_none=True)
    ctx.model.eval()
    if worker.exc is not None:
        result = _error(name, worker.exc)
    elif not isinstance(worker.result, CheckResult):
        result = CheckResult(name, Status.ERROR,
                             f'returned {type(worker.result).__name__}, not a CheckResult')
    else:
        result = worker.result
    result.seconds = seconds
    return result


def run_checks(ctx: GuardContext, names: Iterable[str] | None = None,
               available: dict[str, Check] | None = None,
               on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run the named checks (all by default) in order and return their results.

    ``on_result`` sees each result as soon as it is ready (the CLI prints it).
    """
    available = CHECKS if available is None else available
    names = list(available) if names is None else list(names)
    results = []
    cuda = [torch.cuda.current_device()] if ctx.device.type == 'cuda' else []
    with torch.random.fork_rng(devices=cuda):  # the guard leaves the caller's RNG as it was
        for name in names:
            results.append(run_check(ctx, name, available[name]))
            if on_result is not None:
                on_result(results[-1])
    return results
