"""The fast tier on each config MMAction2 ships passes with no finding (issue 18's targets).

Each is a correct, published model: every finding would be a false alarm. They
are judged by the ``mmaction2`` contract profile (none has a backbone that
takes labels or a label hierarchy), so ``structure``, which proves EPAM-Net's
6-tuple and scores, is not run and says why; every other fast check passes.
Real ResNet-50s and PoseC3D backbones take tens of seconds each on CPU: the
whole set is ``slow`` (``tox -e slow``).
"""
from __future__ import annotations

import pytest

from epam_guard.checks import CHECKS, names_in
from epam_guard.model.context import build_context
from epam_guard.report.result import Status
from epam_guard.run.engine import run_checks

pytestmark = pytest.mark.slow


def test_the_fast_tier_passes_with_no_finding(mmaction_settings) -> None:
    ctx = build_context(mmaction_settings)
    assert ctx.profile.name == 'mmaction2', ctx.profile_reason
    results = {result.name: result for result in run_checks(ctx, names_in('fast'))}
    skipped = {name for name, result in results.items() if result.status is Status.SKIP}
    assert skipped == {name for name in results if 'mmaction2' not in CHECKS[name].profiles}
    assert all(results[name].verdict.startswith('not run: the mmaction2 contract has no')
               for name in skipped)
    failed = {name: result.verdict for name, result in results.items()
              if result.status is not Status.PASS and name not in skipped}
    assert not failed, failed
    assert not [finding for result in results.values() for finding in result.findings]
