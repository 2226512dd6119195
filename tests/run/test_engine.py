"""The check runner: one check's exception is its own error; a request to stop is not."""
from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest
from torch import nn

from epam_guard.contract.errors import StopRequested
from epam_guard.report.result import Status
from epam_guard.run.engine import run_check


def context() -> SimpleNamespace:
    return SimpleNamespace(model=nn.Linear(2, 2))


def test_an_exception_in_a_check_is_that_checks_error():
    def broken(ctx: object) -> None:
        raise ValueError('model code failed')

    result = run_check(context(), 'broken', broken)
    assert result.status is Status.ERROR
    assert result.verdict.startswith('ValueError: model code failed'), result.verdict


@pytest.mark.parametrize('stop', [KeyboardInterrupt(), StopRequested(signal.SIGTERM)])
def test_a_request_to_stop_the_run_is_never_a_checks_error(stop):
    """A launcher's SIGTERM arriving during a check stops the run; it is not swallowed as the
    check's error with the next check run after it."""
    def interrupted(ctx: object) -> None:
        raise stop

    with pytest.raises(type(stop)):
        run_check(context(), 'pipeline', interrupted)
