"""Every check fails on a deliberately broken variant, naming the rule it breaks.

A check that cannot fail is a defect: each test below builds a variant with
one defect (see ``guard_variants.py``), runs one check, and asserts the
failure, the CONTRACT section and the evidence.
"""
from __future__ import annotations

import pytest
from guard_variants import SEED_DEFECT, overrides

from epam_guard.checks import CHECKS
from epam_guard.engine import run_check
from epam_guard.result import Status


def failing(make_context, check: str, cfg_options: dict, rule: str):
    result = run_check(ctx := make_context(cfg_options), check, CHECKS[check])
    assert result.status is Status.FAIL, result.verdict
    assert rule in result.rules, result.findings
    assert f'§{rule}' in result.verdict
    return result, ctx


def messages(result) -> str:
    return '\n'.join(f.message for f in result.findings)


def test_seed_defect_fails_structure_with_the_arity(make_context):
    result, _ = failing(make_context, 'structure', SEED_DEFECT, '3')
    assert 'the backbone returned 2 value(s)' in messages(result)
    assert 'x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse' in messages(result)


def test_seed_defect_fails_routing_with_where_gt_went(make_context):
    result, _ = failing(make_context, 'routing', SEED_DEFECT, '2')
    text = messages(result)
    assert 'loss mode: cls_head.loss received gt, gt_coarse' in text
    assert "forward() got an unexpected keyword argument 'gt'" in text
    assert 'loss mode: the backbone received no gt' in text


def test_seed_defect_trace_shows_gt_going_into_the_head(make_context, capsys):
    from epam_guard.trace import trace

    text = trace(make_context(SEED_DEFECT))
    loss = text.split('\n\npredict mode')[0]
    head_call = next(line for line in loss.splitlines() if 'cls_head.loss(' in line)
    assert 'gt=[0, 23] (int64, cpu)  <- labels' in head_call
    assert '<- coarse labels' in head_call
    assert "!! TypeError: EPAMHierarchicalHead.forward() got an unexpected keyword argument 'gt'" \
        in loss


def test_aliased_fr_features_fail_structure(make_context):
    result, _ = failing(make_context, 'structure', overrides(backbone='GuardTestAliasBackbone'),
                        '3')
    assert 'x_rgb1 is the same tensor as x_rgb' in messages(result)


def test_labels_not_echoed_fail_structure(make_context):
    result, _ = failing(make_context, 'structure', overrides(backbone='GuardTestNoEchoBackbone'),
                        '3')
    assert 'gt_coarse must be echoed unchanged' in messages(result)


def test_prediction_accmetric_cannot_read_fails_structure(make_context):
    result, _ = failing(make_context, 'structure', overrides(head='GuardTestFourScoreHead'), '4')
    assert 'exactly the keys rgb and pose' in messages(result)


def test_labels_at_inference_fail_routing(make_context):
    result, _ = failing(make_context, 'routing',
                        overrides('GuardTestInferenceLabelsRecognizer'), '2')
    assert 'predict mode: the backbone received gt=' in messages(result)
    assert 'no label may reach the model at inference' in messages(result)


def test_batch_dependent_rebasing_fails_labels(make_context):
    result, _ = failing(make_context, 'labels', overrides(head='GuardTestRebasingHead'), '5')
    assert 'dropping the first sample changed the targets of cls_head.' in messages(result)


def test_a_second_hierarchy_fails_labels(make_context):
    result, _ = failing(make_context, 'labels', overrides(head='GuardTestOwnMappingHead'), '5')
    assert 'hierarchy(labels) is' in messages(result)


def test_clamping_out_of_range_labels_fails_labels(make_context):
    result, _ = failing(make_context, 'labels',
                        overrides('GuardTestClampingRecognizer'), '5')
    assert 'label 60 (outside [0, 60)) was accepted' in messages(result)
    assert 'label -1 (outside [0, 60)) was accepted' in messages(result)


def test_prototype_update_at_inference_fails_eval_purity(make_context):
    result, _ = failing(make_context, 'eval_purity', overrides(head='GuardTestSelfTrainingHead'),
                        '6')
    assert 'cls_head.rgb_prototypes' in messages(result)


def test_rewriting_the_callers_inputs_fails_eval_purity(make_context):
    result, _ = failing(make_context, 'eval_purity', overrides('GuardTestInPlaceRecognizer'),
                        '1')
    assert "the caller's inputs 'imgs' was replaced" in messages(result)


def test_nan_loss_fails_train_step(make_context):
    result, _ = failing(make_context, 'train_step', overrides(head='GuardTestNaNHead'), '6')
    assert "loss 'pose_loss_cls' is not finite" in messages(result)


def test_a_step_that_cannot_lower_the_loss_fails_train_step(make_context):
    result, _ = failing(make_context, 'train_step', {'optim_wrapper.optimizer.lr': 0.0}, '6')
    assert 'did not lower the loss' in messages(result)


def test_frozen_stream_fails_summary(make_context):
    result, _ = failing(make_context, 'summary',
                        overrides(backbone='GuardTestFrozenPoseBackbone'), '6')
    assert 'backbone.pose_stream has' in messages(result)
    assert 'none is trainable' in messages(result)


# The launch checks (pipeline, runner, ddp) have their own tests in tests/checks_launch.
CONTRACT_CHECKS = ('structure', 'routing', 'labels', 'train_step', 'eval_purity', 'summary')


@pytest.mark.parametrize('name', CONTRACT_CHECKS)
def test_every_check_passes_on_the_default_config(default_context, name):
    result = run_check(default_context, name, CHECKS[name])
    assert result.status is Status.PASS, f'{result.verdict}\n{result.details}'
