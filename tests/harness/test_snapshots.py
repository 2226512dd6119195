"""Snapshots of the default config's contract structure (reviewed JSON under snapshots/).

Shapes are those of the tiny size at batch 2 (views from the test pipeline).
Regenerate only on purpose: ``pytest tests/harness/test_snapshots.py --snapshot-update``.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope='module')
def results(default_result):
    return {name: default_result(name) for name in ('structure', 'routing', 'summary')}


def test_backbone_tuple_in_loss_and_predict_mode(results, epam_snapshot):
    assert results['structure'].details['structure']['backbone'] == epam_snapshot


def test_head_scores_losses_and_prediction(results, epam_snapshot):
    structure = dict(results['structure'].details['structure'])
    structure.pop('backbone')
    assert structure == epam_snapshot


def test_routing_trace(results, epam_snapshot):
    assert results['routing'].details['calls'] == epam_snapshot


def test_parameter_counts(results, epam_snapshot):
    table = results['summary'].details
    assert {'parts': table['parts'], 'total': table['total']} == epam_snapshot
