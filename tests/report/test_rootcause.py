"""``root_cause``: one mistake that makes several checks fail gets one headline.

The recorded runs (``rootcause_runs.json``) are the fast checks' real results
on broken configs, recorded once from ``epam_guard.run.engine.run_checks`` (long
tracebacks cut to their last line). Where the reference model refuses a
mistake before any check runs (its recognizer compares the head with the
hierarchy, its streams and head check their inputs), the runs were made
with those guards of the model switched off, which is what a fork without
them produces. The last test runs the real case in-process.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from epam_guard.report.result import CheckResult, Status
from epam_guard.report.rootcause import Mismatch, mismatches, root_cause

RUNS = json.loads((Path(__file__).with_name('rootcause_runs.json')).read_text('utf-8'))
FAST = ['structure', 'routing', 'labels', 'train_step', 'eval_purity', 'summary']


def recorded(scenario: str) -> list[CheckResult]:
    return [CheckResult.from_json(data) for data in RUNS[scenario]['results']]


def passed(name: str) -> CheckResult:
    return CheckResult(name, Status.PASS, 'fine')


@pytest.mark.parametrize('scenario, message, key, value, counts, follows', [
    ('inch_ref',
     'cls_head received x_rgb with 432 channels but model.cls_head.in_channels is [400, 216]',
     'model.cls_head.in_channels', [400, 216], (400, 432), FAST),
    ('inch_fork',
     'cls_head received x_rgb with 432 channels but model.cls_head.in_channels is [400, 216]',
     'model.cls_head.in_channels', [400, 216], (400, 432), FAST),
    ('pose_fork',
     'backbone.pose_stream received heatmap_imgs with 17 channels but '
     'model.backbone.pose_stream.in_channels is 25',
     'model.backbone.pose_stream.in_channels', 25, (25, 17), FAST),
    ('pose_conv_fork',
     'backbone.pose_stream received heatmap_imgs with 17 channels but '
     'model.backbone.pose_stream.in_channels is 25',
     'model.backbone.pose_stream.in_channels', 25, (25, 17), FAST),
    ('ncls_small_fork',
     'cls_head makes 50 fine scores but the label hierarchy has 60 fine classes: '
     'model.cls_head.num_classes is 50',
     'model.cls_head.num_classes', 50, (60, 50), FAST[:5]),
    ('ncls_fork',
     'cls_head makes 60 fine scores but the label hierarchy has 50 fine classes: '
     'model.cls_head.num_classes is 60',
     'model.cls_head.num_classes', 60, (50, 60), FAST[:5]),
    ('ncoarse_fork',
     'cls_head makes 6 coarse scores but the label hierarchy has 8 coarse groups: '
     'model.cls_head.num_coarse_classes is 6',
     'model.cls_head.num_coarse_classes', 6, (8, 6), FAST[:5]),
])
def test_recorded_runs_name_one_cause(scenario: str, message: str, key: str, value: Any,
                                      counts: tuple[int, int], follows: list[str]) -> None:
    cause = root_cause(recorded(scenario))
    assert cause is not None, RUNS[scenario]['broken']
    assert cause.message == message
    assert (cause.config_key, cause.config_value) == (key, value)
    assert (cause.expected, cause.got) == counts
    assert cause.follows == follows
    assert str(cause) == message
    json.dumps(asdict(cause))  # it travels in the JSON report


def test_the_fix_names_what_the_backbone_returns() -> None:
    cause = root_cause(recorded('inch_ref'))
    assert cause is not None
    assert cause.module == 'cls_head' and cause.input == 'x_rgb' and cause.rule == '3'
    assert '[432, 216]' in cause.fix


def test_failures_from_different_mistakes_have_no_common_cause() -> None:
    pick = {'structure': 'inch_ref', 'routing': 'pose_conv_fork', 'labels': 'ncoarse_fork'}
    results = [next(r for r in recorded(scenario) if r.name == name)
               for name, scenario in pick.items()]
    results += [passed(name) for name in FAST[3:]]
    assert root_cause(results) is None


@pytest.mark.parametrize('scenario', ['seed_defect', 'nan_loss'])
def test_real_failures_without_a_count_mismatch_have_no_root_cause(scenario: str) -> None:
    results = recorded(scenario)
    assert sum(not r.ok for r in results) >= 2, RUNS[scenario]['broken']
    assert root_cause(results) is None


def test_a_single_failure_is_its_own_headline() -> None:
    structure = next(r for r in recorded('inch_ref') if r.name == 'structure')
    assert root_cause([structure, *(passed(name) for name in FAST[1:])]) is None


def test_passing_results_have_no_cause() -> None:
    assert root_cause([passed(name) for name in FAST]) is None


def test_an_unrelated_failure_does_not_follow() -> None:
    results = recorded('inch_ref')
    results[3] = CheckResult('train_step', Status.FAIL,
                             '[CONTRACT §6 state and devices] the loss rose from 4.1 to 4.3')
    cause = root_cause(results)
    assert cause is not None
    assert 'train_step' not in cause.follows
    assert cause.follows == ['structure', 'routing', 'labels', 'eval_purity', 'summary']


def test_torchinfo_alone_is_not_evidence() -> None:
    """summary's hidden error follows only when another check's pass raised the cause."""
    structure = next(r for r in recorded('inch_ref') if r.name == 'structure')
    summary = next(r for r in recorded('inch_ref') if r.name == 'summary')
    assert root_cause([structure, summary]) is None


def test_a_module_the_contract_does_not_name_gets_no_config_key() -> None:
    """torch's conv error names no module: routing's last call does, and only streams have keys."""
    results = recorded('pose_conv_fork')
    routing = next(r for r in results if r.name == 'routing')
    for calls in routing.details['calls'].values():
        calls.append('backbone.attention.forward(x_rgb, x_pose)')
    cause = root_cause(results)
    assert cause is not None
    assert cause.message == ('backbone.attention received an input with 17 channels but was '
                             'built for 25')
    assert cause.config_key is None and cause.config_value is None
    without_routing = [r for r in recorded('pose_conv_fork') if r.name != 'routing']
    cause = root_cause(without_routing)
    assert cause is not None and cause.module == 'a module' and cause.config_key is None


def test_a_generic_model_is_never_told_of_epams_structures() -> None:
    """The same head mismatch in a model judged by the mmaction2 profile: the head and its
    key, no x_rgb, no streams, no §3 (that profile has no 6-tuple)."""
    results = [CheckResult(name, Status.ERROR,
                           'RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x432 and '
                           '400x60)', details={'calls': {'loss': [
                               'backbone.forward(imgs)', 'cls_head.fc_rgb.forward(x)']}}
                           if name == 'routing' else {})
               for name in ('routing', 'labels', 'train_step')]
    cause = root_cause(results, contract='mmaction2')
    assert cause is not None
    assert cause.message == ('cls_head.fc_rgb received its input with 432 channels but '
                             'model.cls_head.in_channels is 400')
    assert cause.rule == '4' and 'x_rgb' not in str(asdict(cause))
    assert root_cause(results, contract='epam').rule == '3'  # EPAM's own: the 6-tuple


def test_the_reference_stream_names_itself_without_routing() -> None:
    cause = root_cause([r for r in recorded('pose_fork') if r.name != 'routing'])
    assert cause is not None
    assert cause.config_key == 'model.backbone.pose_stream.in_channels'
    assert cause.follows == ['structure', 'labels', 'train_step', 'eval_purity', 'summary']


@pytest.mark.parametrize('text, expected', [
    ('RuntimeError: Given groups=1, weight of size [24, 25, 1, 3, 3], expected input[4, 17, 12, '
     '16, 16] to have 25 channels, but got 17 channels instead', Mismatch('channels', 25, 17)),
    ('RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x432 and 400x60)',
     Mismatch('channels', 400, 432)),
    ('RuntimeError: running_mean should contain 400 elements not 432',
     Mismatch('channels', 400, 432)),
    ("eval: score 'rgb_coarse' must have 8 columns, but got (20, 6) float32",
     Mismatch('coarse', 8, 6, module='cls_head')),
    ('RuntimeError: index 7 is out of bounds for dimension 0 with size 6',
     Mismatch('classes', None, 6)),
])
def test_error_texts_are_read(text: str, expected: Mismatch) -> None:
    found = list(mismatches(text))
    assert len(found) == 1
    assert (found[0].kind, found[0].expected, found[0].got) == \
        (expected.kind, expected.expected, expected.got)
    assert found[0].module == expected.module


def test_shapes_that_agree_in_channels_are_no_mismatch() -> None:
    text = 'loss mode: x_rgb must have shape (4, 432, 4, 2, 2), but got (4, 432, 4, 4, 4)'
    assert list(mismatches(text)) == []


@pytest.mark.slow  # the model fails the size probe, which then tries the config's own
# clip lengths (seconds of CPU per pass), and every fast check runs
def test_real_run_of_a_wrong_head_in_channels() -> None:
    from epam_guard.checks import names_in
    from epam_guard.model.context import GuardSettings, build_context
    from epam_guard.run.engine import run_checks

    # Batch size 2 keeps the run short; the mistake shows the same at any size.
    ctx = build_context(GuardSettings(batch_size=2,
                                      cfg_options={'model.cls_head.in_channels': [400, 216]}))
    results = run_checks(ctx, names_in('fast'))
    # Every check that runs the model fails; the pipelines themselves are right.
    assert [r.name for r in results if r.ok] == ['pipe_shapes']
    results = [r for r in results if not r.ok]
    cause = root_cause([CheckResult.from_json(r.to_json()) for r in results])
    assert cause is not None
    assert cause.module == 'cls_head' and cause.config_key == 'model.cls_head.in_channels'
    assert (cause.got, cause.expected, cause.config_value) == (432, 400, [400, 216])
    assert '432' in cause.message and '[400, 216]' in cause.message
    assert cause.follows == [r.name for r in results]


def test_a_mismatch_the_guards_assumed_inputs_made_is_never_blamed_on_the_model():
    """17 heat-map channels the guard assumed, a stream built for 25: the guard says it was
    its own input, names no config key of the user's as wrong, and says what to declare."""
    assumed = {'heatmap_channels': 17, 'rgb_channels': 3,
               'assumed': ['heat-map channels 17 (17 COCO key points): GeneratePoseTarget does '
                           'not fix the key points and the backbone declares no pose input '
                           'channels']}
    cause = root_cause(recorded('pose_fork'), assumed)
    assert cause is not None and cause.config_key is None and cause.rule == '1'
    assert cause.message.startswith("the guard's own heatmap_imgs have 17 channels, an "
                                    'assumption (heat-map channels 17')
    assert 'built for 25' in cause.message and 'not on a defect of the model' in cause.message
    assert 'pose_stream=dict(in_channels=25)' in cause.fix
    # the same 17 taken from the config is the config's, and stays a config mismatch
    from_config = root_cause(recorded('pose_fork'), {**assumed, 'assumed': []})
    assert from_config is not None
    assert from_config.config_key == 'model.backbone.pose_stream.in_channels'
