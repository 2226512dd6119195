"""Check ``ddp``: two gloo ranks under MMEngine's DistributedDataParallel wrapper."""
from __future__ import annotations

import dataclasses

import pytest
from launch_variants import BATCH, HERE, unused_head_overrides

from epam_guard.checks import ddp
from epam_guard.context import GuardSettings, build_context
from epam_guard.engine import run_check
from epam_guard.result import Status


@pytest.mark.ddp
def test_passes_on_the_default_config(launch_context):
    result = run_check(launch_context, 'ddp', ddp.check)
    assert result.status is Status.PASS, f'{result.verdict}\n{result.details}'
    details = result.details
    assert (details['backend'], details['wrapper'], details['find_unused_parameters']) == (
        'gloo', 'MMDistributedDataParallel', False)
    assert [len(losses) for losses in details['losses'].values()] == [2, 2]
    assert details['no_gradient'] == {}
    assert details['exit_codes'] == [0, 0] and details['stopped'] == []


@pytest.mark.ddp
def test_a_parameter_without_gradient_stops_ddp_and_is_named():
    settings = GuardSettings(batch_size=BATCH, cfg_options=unused_head_overrides(),
                             import_paths=[str(HERE)])
    result = run_check(build_context(settings), 'ddp', ddp.check)
    assert result.status is Status.FAIL, result.verdict
    assert result.rules == ['6']
    message = result.findings[0].message
    assert message.startswith('DistributedDataParallel (find_unused_parameters=False) stopped '
                              'both ranks at train_step 2 with "RuntimeError: Expected to have '
                              'finished reduction in the prior iteration')
    assert "2 parameters got no gradient, in 1 module(s): {'cls_head.unused': ['weight', " \
           "'bias']}" in message
    assert "find_unused_parameters=True) at a speed cost" in message
    assert result.details['exit_codes'] == [0, 0]  # both ranks ended and were reaped


@pytest.mark.ddp
def test_ranks_that_outlive_the_budget_are_stopped(launch_context):
    quick = dataclasses.replace(launch_context, settings=dataclasses.replace(
        launch_context.settings, timeout=2.0))
    result = ddp.check(quick)
    assert result.status is Status.FAIL
    assert 'did not finish within 1.6 s' in result.verdict
    assert sorted(result.details['stopped']) == [0, 1]
    assert all(code is not None for code in result.details['exit_codes'])


def test_one_failed_rank_is_named_and_the_waiting_one_reported_stopped():
    reports = [{'rank': 0, 'phase': 'wrap', 'error': None},
               {'rank': 1, 'phase': 'build', 'error': 'ValueError: bad head\nmore lines'}]
    outcome = {'timed_out': False, 'stopped': [0], 'exit_codes': [-9, 0]}
    findings = ddp.diagnose(reports, outcome, budget=240.0)
    assert [f.message for f in findings] == [
        'rank 0 was still in wrap 5 s after the other rank failed; stopped',
        'rank 1 failed in build: ValueError: bad head']
