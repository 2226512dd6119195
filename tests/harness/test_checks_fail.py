"""Every check fails on a deliberately broken variant, naming the rule it breaks.

A check that cannot fail is a defect: each test below builds a variant with
one defect (see ``guard_variants.py``), runs one check, and asserts the
failure, the CONTRACT section and the evidence.
"""
from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
from guard_variants import SEED_DEFECT, overrides

from epam_guard.checks import CHECKS
from epam_guard.checks.common import MESSAGE_LIMIT, finish
from epam_guard.contract.profiles import Rule
from epam_guard.report.result import Finding, Status
from epam_guard.run.engine import run_check


def failing(make_context, check: str, cfg_options: dict, rule: str):
    return failing_on(make_context(cfg_options), check, rule)


def failing_on(ctx, check: str, rule: str):
    result = run_check(ctx, check, CHECKS[check])
    assert result.status is Status.FAIL, result.verdict
    assert rule in result.rules, result.findings
    assert f'§{rule}' in result.verdict
    return result, ctx


@pytest.fixture(scope='module')
def seed_defect(make_context):
    """One context on the seed defect for the tests that read it: each check and the trace
    put the model back as they found it, as the checks of one CLI run share one context."""
    return make_context(SEED_DEFECT)


def messages(result) -> str:
    return '\n'.join(f.message for f in result.findings)


def test_seed_defect_fails_structure_with_the_arity(seed_defect):
    result, _ = failing_on(seed_defect, 'structure', '3')
    assert 'the backbone returned 2 value(s)' in messages(result)
    assert 'x_rgb, x_pose, x_rgb1, x_pose1, gt, gt_coarse' in messages(result)


def test_seed_defect_fails_routing_with_where_gt_went(seed_defect):
    result, _ = failing_on(seed_defect, 'routing', '2')
    text = messages(result)
    assert 'loss mode: cls_head.loss received gt, gt_coarse' in text
    assert "forward() got an unexpected keyword argument 'gt'" in text
    assert 'loss mode: the backbone received no gt' in text


def test_seed_defect_trace_shows_gt_going_into_the_head(seed_defect, capsys):
    from epam_guard.trace.calls import trace

    text = trace(seed_defect)
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


def test_four_score_keys_with_the_stock_accmetric_fail_structure_naming_the_cause(make_context):
    result, _ = failing(make_context, 'structure', overrides(head='GuardTestFourScoreHead'), '4')
    text = messages(result)
    assert "CheckpointHook(save_best='acc/RGBPose_1:1_top1') waits for a metric" in text
    assert "own AccMetric fuses rgb and pose into RGBPose_* only when the score dict has " \
        'exactly the keys rgb and pose, and predict wrote 4 (rgb, pose, rgb_coarse, ' \
        'pose_coarse)' in text


def test_an_early_stopping_metric_nobody_produces_fails_structure(make_context):
    result, _ = failing(make_context, 'structure', {'custom_hooks': [dict(
        type='EarlyStoppingHook', monitor='acc/RGBPose_top1')]}, '4')
    assert "EarlyStoppingHook(monitor='acc/RGBPose_top1') waits for a metric the config's " \
        "val_evaluator does not produce (did you mean 'acc/RGBPose_1:1_top1'?" \
        in messages(result)


def test_four_score_keys_with_a_fusing_accmetric_of_the_users_pass_structure(make_context):
    """The metric is judged by the config's own evaluator, as the user's code registers it."""
    ctx = make_context({**overrides(head='GuardTestFourScoreHead'),
                        'val_evaluator': [dict(type='GuardTestFusingAccMetric')]})
    result = run_check(ctx, 'structure', CHECKS['structure'])
    assert result.status is Status.PASS, result.findings
    assert 'acc/RGBPose_1:1_top1' in result.details['metrics']


def test_a_11_style_head_passes_structure(make_context):
    """pred_scores (LabelData), hierarchy_* loss keys, gt_labels and 1.1's AccMetric: no alarm."""
    ctx = make_context({**overrides(head='GuardTestPredScoresHead'),
                        'val_evaluator': [dict(type='GuardTestAccMetric11')]},
                       label_api='gt_labels')
    result = run_check(ctx, 'structure', CHECKS['structure'])
    assert result.status is Status.PASS, result.findings
    assert 'pred_scores' in result.details['structure']['prediction']['fields']
    assert 'hierarchy_loss_rgb' in result.details['structure']['losses']
    assert 'acc/RGBPose_1:1_top1' in result.details['metrics']
    labels = run_check(ctx, 'labels', CHECKS['labels'])  # predictions read from pred_scores
    assert labels.status is Status.PASS, labels.findings
    assert labels.details['predictions']['own_change'] > 0


def test_save_best_typo_and_bad_rule_fail_structure(make_context):
    result, _ = failing(make_context, 'structure',
                        {'default_hooks.checkpoint.save_best': 'acc/RGBPose_top1',
                         'default_hooks.checkpoint.rule': 'bigger'}, '4')
    text = messages(result)
    assert "CheckpointHook(save_best='acc/RGBPose_top1') waits for a metric" in text
    assert "did you mean 'acc/RGBPose_1:1_top1'?" in text
    assert "rule='bigger') is refused by MMEngine: KeyError: 'rule must be greater" in text


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


def test_two_independent_label_defects_are_both_reported(make_context):
    result, _ = failing(make_context, 'labels',
                        overrides(head='GuardTestRebasingOwnMappingHead'), '5')
    text = messages(result)
    assert 'hierarchy(labels) is' in text  # the // 8 mapping
    assert 'dropping the first sample changed the targets of cls_head.' in text  # the re-basing


def test_labels_keeps_the_contexts_clip_sizes(default_context):
    """Not shrunk to tiny clips: a fork with fixed clip lengths runs at its own (8 frames here)."""
    ctx = replace(default_context, passes={},
                  recipe=replace(default_context.recipe, rgb_frames=8, pose_frames=24, crop=32,
                                 heatmap=8))
    result = run_check(ctx, 'labels', CHECKS['labels'])
    assert result.status is Status.PASS, result.findings
    assert result.details['recipe'] == {'samples': 8, 'rgb_frames': 8, 'pose_frames': 24,
                                        'crop': 32, 'heatmap': 8}


def test_views_averaged_across_samples_fail_labels(make_context):
    result, _ = failing(make_context, 'labels',
                        overrides(head='GuardTestCrossSampleViewsHead'), '5')
    assert 'replacing the 5 views of sample 0 changed the prediction of sample(s) [1]' \
        in messages(result)
    assert 'views are averaged across samples' in messages(result)


def test_one_prediction_per_clip_fails_labels(make_context):
    result, _ = failing(make_context, 'labels',
                        overrides(head='GuardTestPerClipPredictionsHead'), '4')
    assert 'predict returned 10 predictions for 2 input samples of 5 views each' \
        in messages(result)


def test_clamping_out_of_range_labels_fails_labels(make_context):
    result, _ = failing(make_context, 'labels',
                        overrides('GuardTestClampingRecognizer'), '5')
    assert 'label 60 (outside [0, 60)) was accepted' in messages(result)
    assert 'label -1 (outside [0, 60)) was accepted' in messages(result)


def test_out_of_range_labels_rejected_by_an_unrelated_error_are_a_warning(make_context):
    """Training stops loudly there: a warning, not a failure (severity follows consequence)."""
    result = run_check(make_context(overrides('GuardTestOneHotRecognizer')), 'labels',
                       CHECKS['labels'])
    assert result.status is Status.PASS, result.findings
    shown = '\n'.join(result.warnings)
    assert 'label 60 (outside [0, 60)) was rejected, but the error does not name the label' \
        in shown
    assert 'label -1 (outside [0, 60)) was rejected, but the error does not name the label' \
        in shown
    assert 'CONTRACT §5' in shown


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


def test_parameter_recreated_in_forward_fails_train_step(make_context):
    result, _ = failing(make_context, 'train_step',
                        overrides(head='GuardTestRecreatedPrototypeHead'), '6')
    assert 'cls_head.prototypes is a new nn.Parameter after each forward: it is re-created ' \
        'in forward()' in messages(result)
    assert 'register it as a buffer' in messages(result)


def test_unused_parameters_fail_train_step_under_the_default_wrapper(make_context):
    result, _ = failing(make_context, 'train_step', overrides(head='GuardTestUnusedBranchHead'),
                        '6')
    text = messages(result)
    assert '2 trainable parameters got no gradient, in cls_head.fc_unused (weight, bias)' in text
    assert 'DDP (find_unused_parameters=False' in text
    assert "model_wrapper_cfg=dict(type='MMDistributedDataParallel'" in text


def test_unused_parameters_only_warn_when_the_wrapper_finds_them(make_context):
    ctx = make_context({**overrides(head='GuardTestUnusedBranchHead'),
                        'model_wrapper_cfg': dict(type='MMDistributedDataParallel',
                                                  find_unused_parameters=True)})
    result = run_check(ctx, 'train_step', CHECKS['train_step'])
    assert result.status is Status.PASS, result.findings
    assert 'cls_head.fc_unused (weight, bias)' in result.warnings[0]
    terms = result.details['terms']  # per-term evidence, before and after the step
    assert terms['rgb_loss_tree']['kind'] == 'hierarchy'
    assert all({'before', 'after'} <= set(term) for term in terms.values())
    assert 'rgb_loss_cls ' in result.verdict


def test_negative_loss_term_fails_train_step(make_context):
    result, _ = failing(make_context, 'train_step', overrides(head='GuardTestNegativeTreeHead'),
                        '6')
    assert "loss term 'rgb_loss_tree' is -" in messages(result)
    assert 'a hierarchy loss (a cross-entropy, distance or consistency penalty) is never ' \
        'below zero' in messages(result)


@pytest.mark.skipif(torch.cuda.is_available(), reason='.cuda() works where CUDA is visible')
@pytest.mark.parametrize('check', ['train_step', 'eval_purity', 'first_pass'])
def test_cuda_hard_wired_in_a_loss_is_a_state_finding(make_context, check):
    result, _ = failing(make_context, check, overrides(head='GuardTestCudaLossHead'), '6')
    assert re.search(r'hard-wired to CUDA at \S*guard_variants.py:\d+  weight = '
                     r'torch.ones\(1\).cuda\(\) \(Tensor.cuda\(\), \d+ calls?, first while '
                     r'probing the sizes', messages(result))  # the context's loss pass


def test_a_layer_made_in_the_first_forward_fails_first_pass(make_context):
    result, _ = failing(make_context, 'first_pass',
                        overrides(head='GuardTestLazyLayerHead'), '6')
    text = messages(result)
    assert 'cls_head.fc_fuse gained weight (parameter (60, 216)), bias (parameter (60,)) in the ' \
        'first loss pass: it is made in forward()' in text
    assert 'create it in __init__' in text
    assert result.rules == [Rule.STATE]  # its class rows are a parameter nothing updates


def test_fine_memories_written_at_coarse_rows_fail_first_pass(make_context):
    result, _ = failing(make_context, 'first_pass',
                        overrides(head='GuardTestCoarseRowsHead'), '5')
    text = messages(result)
    for stream in ('rgb', 'pose'):
        assert (f"cls_head.{stream}_prototypes (60 rows, one per fine class) changed at rows "
                "[1, 7] in one training-mode loss pass, but the batch's labels are "
                "[10, 19, 55, 59]: class-indexed state is updated at its classes' rows "
                'only') in text
    assert 'they are the rows of hierarchy(labels)' in text
    assert 'coarse_prototypes' not in text  # the coarse memories are written where they belong
    assert result.rules == [Rule.LABELS]


def test_memories_written_at_inference_fail_first_pass(make_context):
    result, _ = failing(make_context, 'first_pass', overrides(head='GuardTestSelfTrainingHead'),
                        '6')
    assert 'predict mode changed rows [' in messages(result)
    assert '] of cls_head.rgb_prototypes: inference leaves class-indexed state' \
        in messages(result)


def test_first_pass_labels_cannot_coincide_by_chance(default_context):
    from epam_guard.checks.first_pass import coincidence_free_labels

    hierarchy = default_context.hierarchy
    labels = coincidence_free_labels(hierarchy)
    fine, coarse = set(labels), set(hierarchy(torch.tensor(labels)).tolist())
    assert min(fine) >= hierarchy.num_coarse_classes  # fine rows never among the coarse rows
    assert len(coarse) < len(fine) and coarse != set(range(len(coarse)))
    assert fine != set(range(len(labels))) and coarse != set(range(len(labels)))


def test_a_val_pipeline_without_heatmap_scaling_fails_pipe_shapes(make_context):
    from pathlib import Path

    config = Path(__file__).parent / 'configs' / 'val_heatmaps_unscaled.py'
    result = run_check(make_context(config=config), 'pipe_shapes', CHECKS['pipe_shapes'])
    assert result.status is Status.FAIL and result.rules == [Rule.INPUTS], result.verdict
    # the pipeline check's own rule and words, before any video is decoded
    assert result.verdict.startswith('[CONTRACT §1 inputs] val pipeline: imgs is 224x224 and '
                                     'heatmap_imgs 224x224: the RGB stream makes 7x7 (/ 32) '
                                     'and the pose stream 28x28 (/ 8)')
    assert len(result.findings) == 1  # train and test keep their scaling
    assert result.details['splits']['train']['sample'] == {
        'imgs': '(1, 3, 16, 224, 224) float32', 'heatmap_imgs': '(1, 17, 48, 56, 56) float32'}


def test_a_transform_the_shape_pass_does_not_know_is_left_to_pipeline(make_context):
    ctx = make_context({'test_dataloader.dataset.pipeline.4': dict(type='ForkOwnCrop', side=7)})
    result = run_check(ctx, 'pipe_shapes', CHECKS['pipe_shapes'])
    assert result.status is Status.PASS, result.findings
    assert result.verdict.startswith('train, val pipelines make what the model takes')
    assert 'left to the pipeline check: test (transform 5 (ForkOwnCrop): unknown to the shape ' \
        'pass, which cannot tell what it does to shapes)' in result.verdict


def test_a_head_that_masks_predictions_by_the_ground_truth_group_fails_label_blind(
        make_context):
    """Every other fast check passes on it: only behaviour shows a predict that reads labels."""
    result, ctx = failing(make_context, 'label_blind',
                          overrides(head='GuardTestGroupMaskingHead'), '7')
    text = messages(result)
    for kind in ('shuffled', 'constant', 'out of range'):
        assert f'with {kind} labels in the data samples predict changed the scores' in text
    for name in ('routing', 'labels'):
        assert run_check(ctx, name, CHECKS[name]).status is Status.PASS, name


def test_frozen_stream_fails_summary(make_context):
    result, _ = failing(make_context, 'summary',
                        overrides(backbone='GuardTestFrozenPoseBackbone'), '6')
    assert 'backbone.pose_stream has' in messages(result)
    assert 'none is trainable' in messages(result)


def test_a_failing_torchinfo_pass_gives_a_short_verdict(make_context):
    """torchinfo lists every executed layer in its error: never in the one-line verdict."""
    ctx = make_context({'model.cls_head.in_channels': [400, 216]})
    result = run_check(ctx, 'summary', CHECKS['summary'])
    assert result.status is Status.ERROR
    assert len(result.verdict) <= MESSAGE_LIMIT
    assert 'Executed layers' not in result.verdict
    assert 'feats[0] (x_rgb) must be an (N, 400, ...) tensor' in result.verdict
    assert 'after backbone ran' in result.verdict
    assert 'Executed layers up to' in result.details['torchinfo']


def test_findings_are_bounded_with_the_full_text_in_details():
    long = 'x' * 5000
    result = finish('labels', [Finding(Rule.LABELS, f'start {long} end')], 'passed',
                    warnings=[f'w {long}'])
    assert len(result.findings[0].message) == MESSAGE_LIMIT
    assert result.findings[0].message.endswith('...')
    assert len(result.verdict) < MESSAGE_LIMIT + 40
    assert len(result.warnings[0]) == MESSAGE_LIMIT
    assert result.details['full_text'][0].endswith(f'{long} end')
    assert result.details['full_text'][1] == f'w {long}'


def test_the_same_evidence_twice_is_one_finding():
    twice = [Finding(Rule.LABELS, 'loss_fine received [1]'), Finding(Rule.LABELS, 'other'),
             Finding(Rule.LABELS, 'loss_fine received [1]')]
    result = finish('labels', twice, 'passed')
    assert [f.message for f in result.findings] == ['loss_fine received [1] (2 times)', 'other']


# The launch checks (pipeline, runner, ddp) have their own tests in tests/checks_launch.
CONTRACT_CHECKS = ('structure', 'routing', 'labels', 'label_blind', 'train_step', 'eval_purity',
                   'first_pass', 'pipe_shapes', 'summary')


@pytest.mark.parametrize('name', CONTRACT_CHECKS)
def test_every_check_passes_on_the_default_config(default_result, name):
    result = default_result(name)
    assert result.status is Status.PASS, f'{result.verdict}\n{result.details}'
