"""``pipe_shapes`` on the shipped configs: every kind's pipelines are followed and pass; a
pipeline that makes what the model does not take fails naming the rule, for several kinds."""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
from mmaction_configs import MMActionConfig, mmaction_config

from epam_guard.checks import pipe_shapes
from epam_guard.contract.profiles import Rule
from epam_guard.model.batch import pipeline_of, recipe_from_config
from epam_guard.model.context import load_config
from epam_guard.report.result import Status


def context(cfg: Any) -> Any:
    """What ``pipe_shapes`` reads of a context (the config and the batch recipe): no model is
    built, as the check builds none."""
    return SimpleNamespace(cfg=cfg, recipe=recipe_from_config(cfg, 'tiny', batch_size=2))


def loaded(config_id: str) -> Any:
    config = mmaction_config(config_id)
    return load_config(config.path, dict(config.cfg_options))


def edit(cfg: Any, kind: str, **changes: Any) -> Any:
    """``cfg`` with ``changes`` made to the ``kind`` transform of each of its pipelines."""
    cfg = copy.deepcopy(cfg)
    for split in ('train', 'val', 'test'):
        for step in pipeline_of(cfg, split):
            if step['type'] == kind:
                step.update(changes)
    return cfg


def test_every_pipeline_of_the_shipped_configs_makes_what_the_model_takes(
        mmaction_config: MMActionConfig) -> None:
    result = pipe_shapes.check(context(load_config(mmaction_config.path,
                                                   dict(mmaction_config.cfg_options))))
    assert result.status is Status.PASS, result.verdict
    assert 'left to the pipeline check' not in result.verdict  # every split followed
    assert result.verdict.startswith('train, val, test pipelines make what the model takes')


@pytest.mark.parametrize('config_id, transform, changes, words', [
    # a 2-D model handed 3-D clips: FormatShape for another kind
    ('tsn', 'FormatShape', dict(input_format='NCTHW'), 'takes NCHW samples of 4 axes'),
    # TSM folds its segments by 8: a test pipeline sampling 6 cannot be folded
    ('tsm', 'SampleFrames', dict(num_clips=6), 'cls_head.num_segments 8 does not divide'),
    # a 3-D RGB model handed 2-D frames
    ('slowonly', 'FormatShape', dict(input_format='NCHW'), 'takes NCTHW samples of 5 axes'),
    # heat maps of key points and limbs where the backbone takes the key points alone
    ('posec3d', 'GeneratePoseTarget', dict(with_limb=True), 'channels per imgs'),
    # bones and joints (6 coordinates) where STGCN takes 3
    ('stgcn', 'GenSkeFeat', dict(feats=['j', 'b']), '6 channels per keypoint'),
    # NTU's 25 joints where the graph is COCO's 17
    ('stgcn', 'GenSkeFeat', dict(dataset='nturgb+d'), '25 joints per keypoint'),
])
def test_a_pipeline_the_model_cannot_take_fails_naming_the_rule(
        config_id: str, transform: str, changes: dict, words: str) -> None:
    result = pipe_shapes.check(context(edit(loaded(config_id), transform, **changes)))
    assert result.status is Status.FAIL, result.verdict
    assert result.findings and all(f.rule is Rule.INPUTS for f in result.findings)
    assert any(words in f.message for f in result.findings), [f.message for f in result.findings]
