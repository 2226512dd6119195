"""Check ``pipeline``: the config's pipelines against what the model takes."""
from __future__ import annotations

import pytest
from launch_variants import steps
from mmengine.registry import DefaultScope

from epam_guard.checks import pipeline
from epam_guard.probe.isolation import manager_instances, mmengine_instances
from epam_guard.report.result import Status
from epam_guard.run.engine import run_check


def failing(ctx):
    result = run_check(ctx, 'pipeline', pipeline.check)
    assert result.status is Status.FAIL, result.verdict
    assert result.rules == ['1'] and '§1' in result.verdict
    return result, '\n'.join(f.message for f in result.findings)


@pytest.mark.slow
def test_passes_on_the_default_config_at_ntu_size(launch_context):
    result = run_check(launch_context, 'pipeline', pipeline.check)
    assert result.status is Status.PASS, f'{result.verdict}\n{result.findings}'
    splits = result.details['splits']
    assert splits['train']['batch'] == {'imgs': '(2, 1, 3, 16, 224, 224) float32',
                                        'heatmap_imgs': '(2, 1, 17, 48, 56, 56) float32'}
    assert splits['test']['batch'] == {'imgs': '(1, 5, 3, 16, 224, 224) float32',
                                       'heatmap_imgs': '(1, 5, 17, 48, 56, 56) float32'}
    assert splits['train']['model'].startswith('loss mode')
    assert splits['val']['model'].startswith('predict mode')
    assert 'not re-run' in splits['test']['model']


def test_a_pose_clip_length_the_model_cannot_take(edited):
    def pose_40(cfg):
        for sampler in steps(cfg, 'MMUniformSampleFrames'):
            sampler.clip_len = dict(RGB=16, Pose=40)

    with mmengine_instances():  # the scope this test sets goes afterwards
        DefaultScope.get_instance('pipeline-test', scope_name='mmengine')
        before = manager_instances()
        result, text = failing(edited(pose_40))
        assert manager_instances() == before  # the check's own 'mmaction' scope is gone
    assert result.verdict.startswith('[CONTRACT §1 inputs] train pipeline: heatmap_imgs has '
                                     '40 frames and imgs 16: the model takes 3 pose frames per '
                                     'RGB frame (48 for 16')
    assert {'train pipeline', 'val pipeline', 'test pipeline'} <= {
        f.message.split(':')[0] for f in result.findings}
    # Reported from the pipeline's output, before any tensor reached the model.
    assert all('model' not in split for split in result.details['splits'].values())


def test_missing_heatmaps_limb_channels_and_mismatched_heatmap_scaling(edited):
    def break_them(cfg):
        for pack in steps(cfg, 'PackActionInputs'):
            pack.collect_keys = ('imgs', )
        cfg.train_dataloader.dataset.pipeline[-1].collect_keys = ('imgs', 'heatmap_imgs')
        for target in steps(cfg, 'GeneratePoseTarget'):
            target.scaling = 0.5
            target.with_limb = True

    result, text = failing(edited(break_them))
    assert ('train pipeline: imgs is 224x224 and heatmap_imgs 112x112: the RGB stream makes '
            '7x7 (/ 32) and the pose stream 14x14 (/ 8)') in text
    assert ('train pipeline: heatmap_imgs has 34 channels (GeneratePoseTarget), but '
            'backbone.pose_stream.in_channels is 17') in text
    assert ("test pipeline: PackActionInputs packed ['imgs'], without heatmap_imgs: add it to "
            "PackActionInputs(collect_keys=('imgs', 'heatmap_imgs'))") in text
