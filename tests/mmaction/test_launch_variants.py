"""Broken variants of shipped configs, per dataset type, that the launch tier must fail.

A Kinetics ``VideoDataset`` config (TSN) and NTU ``PoseDataset`` ones (STGCN
under a ``RepeatDataset``; RGBPose with videos), each with one planted defect:
a pipeline that packs what the model does not take (``pipeline``, CONTRACT §1) and a
validation that does not report the metric ``save_best`` waits for
(``runner``, CONTRACT §4). Each must fail naming its rule, and the clean
config (``test_launch_tier.py``) passes.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import pytest
from mmaction_configs import mmaction_config

from epam_guard.checks import pipeline, runner
from epam_guard.model.context import GuardSettings, build_context
from epam_guard.report.result import CheckResult, Status
from epam_guard.run.engine import run_check

pytestmark = pytest.mark.slow


@functools.cache
def context(config_id: str) -> Any:
    config = mmaction_config(config_id)
    return build_context(GuardSettings(config=config.path, cfg_options=dict(config.cfg_options),
                                       batch_size=2))


def broken(config_id: str, edit: Callable[[Any], None]) -> Any:
    """The shipped config's context with ``edit`` applied to a copy of its config."""
    ctx = context(config_id)
    cfg = copy.deepcopy(ctx.cfg)
    edit(cfg)
    return dataclasses.replace(ctx, cfg=cfg, passes={})


def failed(result: CheckResult, rule: str) -> str:
    assert result.status is Status.FAIL, result.verdict
    assert result.rules == [rule] and f'§{rule}' in result.verdict, result.verdict
    return '\n'.join(f.message for f in result.findings)


def test_a_video_pipeline_packing_a_dict_for_a_one_tensor_model_fails_pipeline() -> None:
    def pack_a_dict(cfg: Any) -> None:
        cfg.train_dataloader.dataset.pipeline[-1].collect_keys = ('imgs',)

    ctx = broken('tsn', pack_a_dict)
    text = failed(run_check(ctx, 'pipeline', pipeline.check), '1')
    assert text.startswith('train pipeline: PackActionInputs packs imgs, but Recognizer2D takes '
                           'one NCHW tensor per sample'), text
    assert 'val pipeline' not in text


def test_a_multimodal_pipeline_collecting_a_key_the_model_does_not_take_fails_pipeline(
        ) -> None:
    def with_keypoints(cfg: Any) -> None:
        cfg.train_dataloader.dataset.pipeline[-1].collect_keys = ('imgs', 'heatmap_imgs',
                                                                  'keypoint')

    ctx = broken('rgbpose', with_keypoints)
    text = failed(run_check(ctx, 'pipeline', pipeline.check), '1')
    assert text == ("train pipeline: PackActionInputs packed ['heatmap_imgs', 'imgs', "
                    "'keypoint'], but the model (multimodal) takes only ['imgs', "
                    "'heatmap_imgs']: drop keypoint from its collect_keys"), text


def test_pose_features_the_gcn_does_not_take_fail_pipeline() -> None:
    def joints_and_bones(cfg: Any) -> None:
        steps = cfg.train_dataloader.dataset.dataset.pipeline
        next(s for s in steps if s.type == 'GenSkeFeat').feats = ['j', 'b']

    ctx = broken('stgcn', joints_and_bones)
    text = failed(run_check(ctx, 'pipeline', pipeline.check), '1')
    assert text.startswith('train pipeline: 6 channels per keypoint'), text
    assert 'but the model takes 3' in text


def test_a_video_configs_evaluator_without_the_save_best_metric_fails_runner() -> None:
    def mean_class_accuracy_only(cfg: Any) -> None:
        cfg.val_evaluator = dict(type='AccMetric', metric_list=('mean_class_accuracy',))
        cfg.default_hooks.checkpoint.save_best = 'acc/top1'
        cfg.train_dataloader.dataset.pipeline[1].num_clips = 1  # one segment: seconds
        cfg.val_dataloader.dataset.pipeline[1].num_clips = 1

    ctx = broken('tsn', mean_class_accuracy_only)
    text = failed(run_check(ctx, 'runner', runner.check), '4')
    assert "CheckpointHook(save_best='acc/top1') waits for a metric validation never produces; " \
           "it reported acc/mean1" in text
    assert "did you mean 'acc/mean1'?" in text


def test_a_pose_configs_save_best_key_that_no_metric_makes_fails_runner() -> None:
    def top1_mean(cfg: Any) -> None:
        cfg.default_hooks.checkpoint.save_best = 'acc/RGBPose_1:1_top1'

    ctx = broken('stgcn', top1_mean)
    text = failed(run_check(ctx, 'runner', runner.check), '4')
    assert "save_best='acc/RGBPose_1:1_top1') waits for a metric validation never produces; " \
           "it reported acc/top1, acc/top5, acc/mean1" in text


def rawframes(cfg: Any) -> None:
    """TSN's loaders as a RawframeDataset of frame folders, decoded by RawFrameDecode."""
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        dataset.type, dataset.data_prefix = 'RawframeDataset', dict(img='data/rawframes')
        dataset.pipeline = [dict(type='RawFrameDecode') if step.type == 'DecordDecode' else step
                            for step in dataset.pipeline if step.type != 'DecordInit']


def test_a_rawframe_config_passes_pipeline_and_its_broken_variant_fails() -> None:
    result = run_check(broken('tsn', rawframes), 'pipeline', pipeline.check)
    assert result.status is Status.PASS, result.verdict
    assert result.details['data'].startswith('synthetic RawframeDataset: ')

    def clips_for_a_3d_model(cfg: Any) -> None:
        rawframes(cfg)
        next(step for step in cfg.val_dataloader.dataset.pipeline
             if step.type == 'FormatShape').input_format = 'NCTHW'

    text = failed(run_check(broken('tsn', clips_for_a_3d_model), 'pipeline', pipeline.check),
                  '1')
    assert text.startswith('val pipeline: the sample is 5-D'), text
    assert 'but Recognizer2D takes NCHW samples of 4 axes' in text
