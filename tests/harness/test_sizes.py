"""``--size ntu`` without NTU-size arithmetic: shapes from the meta device, values at the
config's clip lengths with space shrunk."""
from __future__ import annotations

import pytest
from guard_variants import SEED_DEFECT, overrides

from epam_guard.checks import CHECKS
from epam_guard.model.passes import shape_pass, value_context
from epam_guard.report.result import Status
from epam_guard.run.engine import run_check


def test_value_checks_keep_the_clip_lengths_and_shrink_space(make_context):
    ctx = make_context(size='ntu')
    values = value_context(ctx).recipe
    assert (values.rgb_frames, values.pose_frames) == (16, 48)
    assert values.crop < ctx.recipe.crop == 224
    assert value_context(make_context()) is not None


@pytest.mark.slow
def test_structure_at_ntu_reads_full_size_shapes_from_a_meta_pass(make_context):
    result = run_check(make_context(size='ntu'), 'structure', CHECKS['structure'])
    assert result.status is Status.PASS, result.verdict
    assert 'ntu-size shapes from a shape-only pass on the meta device' in result.verdict
    backbone = result.details['structure']['backbone']['predict at ntu size']
    assert backbone[0]['shape'] == [2 * 5, 432, 16, 7, 7]  # N*V clips, input/32 spatially


@pytest.mark.slow
def test_the_seed_defect_is_caught_at_ntu_size(make_context):
    result = run_check(make_context(SEED_DEFECT, size='ntu'), 'structure', CHECKS['structure'])
    assert result.status is Status.FAIL
    messages = '\n'.join(f.message for f in result.findings)
    assert 'predict mode at ntu size: the backbone returned 2 value(s)' in messages


@pytest.mark.slow
def test_a_model_that_fixes_its_crop_is_judged_at_the_configs_crop(make_context):
    fixed = overrides(backbone='GuardTestFixedCropBackbone')
    at_ntu = run_check(make_context(fixed, size='ntu'), 'structure', CHECKS['structure'])
    assert at_ntu.status is Status.PASS, at_ntu.verdict  # right at 224, where it runs
    at_tiny = run_check(make_context(fixed), 'structure', CHECKS['structure'])
    assert 'loss mode: x_rgb must have shape (2, 432, 4, 2, 2), but got (2, 432, 4, 7, 7)' \
        in '\n'.join(f.message for f in at_tiny.findings)


def test_a_model_that_reads_values_falls_back_to_a_real_pass_and_says_so(make_context):
    ctx = make_context(overrides(backbone='GuardTestValueReadingBackbone'))
    run, why = shape_pass(ctx, 'predict')
    assert why is not None and why.startswith('it cannot run on the meta device (')
    assert run.error is None and run.recorder.of('backbone')[0].output[0].device.type == 'cpu'
