"""Run checks one after another on one context; one's exception never stops the others.

Each check runs on a model whose parameters, buffers and gradients are
restored afterwards, so checks cannot leak state into each other. A check
that raises becomes an ``error`` result for that check alone. Hangs and
crashes are not this module's business: the CLI runs it inside a supervised
child process (:mod:`epam_guard.run.supervisor`) that it can stop.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..checks import CHECKS, Check, select_checks  # noqa: F401  (select_checks: for callers)
from ..contract.errors import StopRequested, one_line
from ..contract.profiles import Rule
from ..probe import state
from ..probe.isolation import CudaPlacements, contained_cuda, library_homes
from ..report.result import CheckResult, Finding, Status, bounded

#: What a hard-wired CUDA placement asks the user to do instead.
CUDA_FIX = ("create it on the inputs' device (x.new_*, .to(x.device), a registered buffer) so "
            'the same code runs on CPU and GPU')


def _error(name: str, exc: BaseException) -> CheckResult:
    return CheckResult(name, Status.ERROR, bounded(one_line(exc)),
                       details={'error': one_line(exc),
                                'traceback': traceback.format_exception(exc)[-6:]})


def cuda_findings(placements: CudaPlacements | None) -> list[Finding]:
    """One CONTRACT §6 finding per hard-wired CUDA call site not reported before."""
    if placements is None:
        return []
    return [Finding(Rule.STATE,
                    f'hard-wired to CUDA at {site} ({seen["call"]}, {seen["count"]} '
                    f'call{"s" if seen["count"] > 1 else ""}, first while {seen["phase"]}; kept '
                    f'on {placements.device} so the checks go on): {CUDA_FIX}')
            for site, seen in placements.unreported()]


def with_findings(result: CheckResult, extra: list[Finding]) -> CheckResult:
    """``result`` with ``extra`` findings after its own: a pass becomes a fail led by them."""
    if not extra:
        return result
    findings = result.findings + extra
    status, verdict = result.status, result.verdict
    if status is not Status.ERROR:  # an error keeps its own verdict
        status = Status.FAIL
        verdict = str(findings[0]) + (f' (+{len(findings) - 1} more)' if len(findings) > 1 else '')
    return CheckResult(result.name, status, bounded(verdict), findings, result.details,
                       result.seconds, result.warnings)


def run_check(ctx: Any, name: str, check: Check) -> CheckResult:
    """Run one check, with the model's state put back afterwards.

    Model code runs with :func:`~epam_guard.probe.isolation.contained_cuda` (every
    CUDA placement hard-wired into it becomes a finding of the first check to
    report it) and :func:`~epam_guard.probe.isolation.library_homes` (what libraries
    create on first use goes to a temporary folder when the home has none;
    ``details['library_homes']`` says what was created instead of where). A check
    the context's contract profile does not run is a ``skip`` saying why.
    """
    spec = CHECKS.get(name)
    profile = getattr(ctx, 'profile', None)
    skipped = spec.not_run(profile) if spec is not None and profile is not None else None
    if skipped and profile is not None:  # the profile has not the rules: said, never a pass
        return CheckResult(name, Status.SKIP, skipped, details={'contract': profile.name})
    saved = state.copy_tensors(ctx.model)
    start = time.perf_counter()
    placements = getattr(ctx, 'cuda', None)
    made: dict[str, Any] = {}
    try:
        with library_homes() as homes, contained_cuda(placements, f'running the {name} check'):
            try:
                result = check(ctx)
            finally:
                made = homes.created()
    except BaseException as exc:  # SystemExit from model code included: this check's error
        if isinstance(exc, (KeyboardInterrupt, StopRequested)):
            raise  # a request to stop the run, not this check's failure
        result = _error(name, exc)
    seconds = time.perf_counter() - start
    if isinstance(result, CheckResult):
        result = with_findings(result, cuda_findings(placements))
        if made:
            result.details['library_homes'] = made
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
               on_result: Callable[[CheckResult], None] | None = None,
               on_start: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Run the named checks (all by default) in order and return their results.

    This is the one way a set of checks is run: by the CLI's worker, by each
    rank of a ``--launcher`` job and by the pytest plugin. ``on_start`` hears
    each check's name as it begins, ``on_result`` sees each result as soon as
    it is ready. The caller's random state is left as it was.
    """
    available = dict(CHECKS) if available is None else available
    names = list(available) if names is None else list(names)
    results = []
    cuda = [torch.cuda.current_device()] if ctx.device.type == 'cuda' else []
    with torch.random.fork_rng(devices=cuda):
        for name in names:
            if on_start is not None:
                on_start(name)
            results.append(run_check(ctx, name, available[name]))
            if on_result is not None:
                on_result(results[-1])
    return results
