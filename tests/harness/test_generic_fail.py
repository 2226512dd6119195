"""The generic profile's checks fail on broken variants of a generic MMAction2 recognizer.

The models are MMAction2's ``MMRecognizer3D`` with ``RGBPoseHead`` and its
``Recognizer2D`` with ``TSNHead``, each on a tiny backbone
(``configs/tiny_rgbpose.py``, ``configs/tiny_tsn.py``), judged by the
``mmaction2`` profile;
each test plants one defect (``generic_variants.py``), runs the check that
must see it, and asserts the failure names the rule and shows the evidence.
The same defects on the EPAM recognizer are in ``test_checks_fail.py``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from generic_variants import GENERIC_BROKEN, TINY_RGBPOSE, TINY_TSN, TSN_BROKEN

from epam_guard.checks import CHECKS, names_in
from epam_guard.report.result import Status
from epam_guard.run.engine import run_check


@pytest.fixture(scope='module')
def generic_context(make_context):
    """``generic_context(defect)`` -> a context on the tiny generic model with that defect
    (None: the correct model)."""
    def make(defect: str | None = None):
        return make_context(GENERIC_BROKEN[defect] if defect else {}, config=TINY_RGBPOSE)

    return make


@pytest.fixture(scope='module')
def tsn_context(make_context):
    """``tsn_context(defect)`` -> a context on the tiny Recognizer2D/TSNHead model."""
    def make(defect: str | None = None):
        return make_context(TSN_BROKEN[defect] if defect else {}, config=TINY_TSN)

    return make


def failing(ctx, check: str, rule: str) -> str:
    """Run ``check``; assert it fails citing ``rule``; the findings' text."""
    result = run_check(ctx, check, CHECKS[check])
    assert result.status is Status.FAIL, (result.verdict, result.findings)
    assert rule in result.rules, result.findings
    return '\n'.join(str(finding) for finding in result.findings)


def test_the_correct_generic_model_is_judged_by_mmaction2_and_passes(generic_context):
    ctx = generic_context()
    assert ctx.profile.name == 'mmaction2'
    assert ctx.hierarchy is None
    results = {name: run_check(ctx, name, CHECKS[name]) for name in names_in('fast')}
    assert results['structure'].status is Status.SKIP
    assert 'the mmaction2 contract has no §3' in results['structure'].verdict
    assert {name: r.status for name, r in results.items() if name != 'structure'} == \
        {name: Status.PASS for name in results if name != 'structure'}, \
        {name: r.verdict for name, r in results.items()}
    # MMRecognizer3D rewrites the caller's inputs: a warning in this profile, not a failure.
    assert any("caller's inputs" in warning for warning in results['eval_purity'].warnings)


def test_a_remapped_label_and_per_clip_predictions_fail_labels(generic_context):
    remapped = failing(generic_context('label remapped in the head'), 'labels', '5')
    assert 'cls_head.loss_cls(args[1]) received [1, 24, 47' in remapped
    assert 'the labels are [0, 23, 46' in remapped and 'hierarchy' not in remapped
    per_clip = failing(generic_context('one prediction per clip'), 'labels', '4')
    assert 'predict returned 4 predictions for 2 input samples of 2 views each' in per_clip


def test_labels_as_keyword_arguments_or_to_the_backbone_fail_routing(generic_context):
    text = failing(generic_context('labels as keyword arguments'), 'routing', '2')
    assert 'loss mode: cls_head.loss received the labels as labels; labels reach the head ' \
        'only in its data samples' in text
    # EPAM's routing is a defect in a model whose profile does not have it
    text = failing(generic_context('labels to the backbone'), 'routing', '2')
    assert 'loss mode: the labels reached backbone.forward as labels' in text


def test_a_predict_that_reads_the_labels_fails_label_blind(generic_context):
    text = failing(generic_context('predict reads the labels'), 'label_blind', '7')
    for kind in ('shuffled', 'constant', 'out of range'):
        assert f'with {kind} labels in the data samples predict changed the scores' in text


def test_an_unused_branch_fails_train_step(generic_context):
    assert 'cls_head.fc_fused' in failing(generic_context('unused branch'), 'train_step', '6')


def test_batchnorm_updated_at_inference_fails_eval_purity(generic_context):
    ctx = generic_context('BatchNorm updated at inference')
    text = failing(ctx, 'eval_purity', '6')
    assert 'predict mode changed' in text and 'backbone.rgb_path.1.running_mean' in text


def test_a_layer_made_in_forward_fails_first_pass(generic_context):
    found = failing(generic_context('layer made in forward'), 'first_pass', '6')
    assert 'cls_head.fc_late gained weight' in found


def test_a_frozen_stream_fails_summary(generic_context):
    assert 'backbone.pose_path has' in failing(generic_context('frozen part'), 'summary', '6')


def test_the_same_head_defects_on_a_2d_recognizer_fail_the_same_rules(tsn_context):
    """Recognizer2D with TSNHead: one tensor of segments per sample, not a dict."""
    assert tsn_context().profile.name == 'mmaction2'
    remapped = failing(tsn_context('label remapped in the head'), 'labels', '5')
    assert 'received [1, 24' in remapped and 'the labels are [0, 23' in remapped
    blind = failing(tsn_context('predict reads the labels'), 'label_blind', '7')
    assert 'with constant labels in the data samples predict changed the scores' in blind
    per_segment = failing(tsn_context('one prediction per clip'), 'labels', '4')
    assert 'predict returned 12 predictions for 2 input samples of 2 views' in per_segment


def test_the_routing_and_state_defects_on_a_2d_recognizer_fail_the_same_rules(tsn_context):
    """Recognizer2D with TSNHead: labels handed to the head beside ``num_segs``, and the
    state defects, each caught by the same check as on the multimodal recognizer."""
    text = failing(tsn_context('labels as keyword arguments'), 'routing', '2')
    assert 'cls_head.loss received the labels as labels' in text
    assert 'cls_head.fc_spare' in failing(tsn_context('unused branch'), 'train_step', '6')
    text = failing(tsn_context('BatchNorm updated at inference'), 'eval_purity', '6')
    assert 'predict mode changed' in text and 'backbone.body.1.running_mean' in text
    assert 'cls_head.fc_late gained weight' in failing(tsn_context('layer made in forward'),
                                                       'first_pass', '6')
    assert 'backbone.body' in failing(tsn_context('frozen part'), 'summary', '6')


@pytest.mark.ddp
@pytest.mark.slow  # two real rank processes under the elastic agent
@pytest.mark.parametrize('kind', ['MMRecognizer3D', 'Recognizer2D'])
def test_an_unused_branch_stops_ddp_and_is_named(kind: str) -> None:
    """The ranks import the variants themselves (``custom_imports``, this folder on their
    import path), so DDP meets the same unused classifier the check names."""
    from epam_guard.checks import ddp
    from epam_guard.model.context import GuardSettings, build_context

    config, broken, module = {'MMRecognizer3D': (TINY_RGBPOSE, GENERIC_BROKEN, 'fc_fused'),
                              'Recognizer2D': (TINY_TSN, TSN_BROKEN, 'fc_spare')}[kind]
    settings = GuardSettings(config=config, cfg_options=dict(broken['unused branch']),
                             batch_size=2, import_paths=[str(Path(__file__).parent)])
    result = run_check(build_context(settings), 'ddp', ddp.check)
    assert result.status is Status.FAIL and result.rules == ['6'], result.verdict
    message = result.findings[0].message
    assert 'DistributedDataParallel (find_unused_parameters=False) stopped' in message
    assert f"'cls_head.{module}'" in message, message


def test_a_predict_that_reads_the_labels_passes_routing(generic_context):
    """No routing record shows a predict that reads its samples' labels; only
    ``label_blind``'s behaviour does."""
    ctx = generic_context('predict reads the labels')
    assert run_check(ctx, 'routing', CHECKS['routing']).status is Status.PASS


def test_every_generic_check_has_a_generic_broken_variant() -> None:
    """Each fast check the mmaction2 profile runs is failed by a test here (pipe_shapes
    reads only the config's pipelines, not the recognizer: its variants are configs)."""
    source = Path(__file__).read_text('utf-8')
    generic = {name for name in names_in('fast') if 'mmaction2' in CHECKS[name].profiles}
    failed = {name for name in generic if re.search(rf"failing\([^\n]*'{name}'", source)}
    assert generic - failed == {'pipe_shapes'}
