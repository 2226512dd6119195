"""The synthetic batch of each shipped config: its kind and shapes as the config says, and the
real model takes it (one loss and one predict pass)."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from mmaction_configs import MMActionConfig

from epam_guard.model.batch import (
    TINY_CROP,
    TINY_RGB_FRAMES,
    labels_of,
    make_batch,
    pass_sizes,
    pipeline_of,
    preprocess,
    recipe_from_config,
    sampler_clip_len,
    select,
)
from epam_guard.model.context import GuardSettings, build_context, load_config

KINDS = {'rgbpose': 'multimodal', 'posec3d': 'NCTHW_Heatmap', 'stgcn': 'GCN', 'tsn': 'NCHW',
         'tsm': 'NCHW', 'slowonly': 'NCTHW'}


def _step(cfg: Any, kind: str, split: str = 'train') -> dict:
    return next(step for step in pipeline_of(cfg, split) if step['type'] == kind)


def expected(config_id: str, cfg: Any) -> dict[str, tuple[int, ...]]:
    """One tiny sample of one view, read from the config by hand (not by the recipe's code)."""
    model = cfg.model
    if config_id == 'rgbpose':
        clip = _step(cfg, 'MMUniformSampleFrames')['clip_len']
        rgb = min(clip['RGB'], TINY_RGB_FRAMES)
        pose = rgb * clip['Pose'] // clip['RGB']
        heat = TINY_CROP * _step(cfg, 'GeneratePoseTarget')['scaling']
        return {'imgs': (1, len(model.data_preprocessor.preprocessors.imgs.mean), rgb,
                         TINY_CROP, TINY_CROP),
                'heatmap_imgs': (1, model.backbone.pose_pathway.in_channels, pose, heat, heat)}
    if config_id == 'posec3d':
        frames = min(_step(cfg, 'UniformSampleFrames')['clip_len'], TINY_RGB_FRAMES)
        side = min(next(s['scale'][0] for s in pipeline_of(cfg, 'train')
                        if s['type'] == 'Resize' and s.get('keep_ratio') is False), TINY_CROP)
        return {'imgs': (1, model.backbone.in_channels, frames, side, side)}
    if config_id == 'stgcn':
        from mmaction.models.utils import Graph

        frames = min(_step(cfg, 'UniformSampleFrames')['clip_len'], TINY_RGB_FRAMES)
        joints = Graph(**model.backbone.graph_cfg).num_node
        return {'keypoint': (1, _step(cfg, 'FormatGCNInput')['num_person'], frames, joints, 3)}
    sampler = _step(cfg, 'SampleFrames')
    channels = len(model.data_preprocessor.mean)
    if config_id in ('tsn', 'tsm'):  # the segments are the model's: kept at tiny
        return {'imgs': (sampler['clip_len'] * sampler['num_clips'], channels, TINY_CROP,
                         TINY_CROP)}
    return {'imgs': (1, channels, min(sampler['clip_len'], TINY_RGB_FRAMES), TINY_CROP,
                     TINY_CROP)}


def test_recipe_kind_and_shapes_follow_the_config(mmaction_config: MMActionConfig) -> None:
    cfg = load_config(mmaction_config.path, dict(mmaction_config.cfg_options))
    recipe = recipe_from_config(cfg, 'tiny', batch_size=2)
    assert recipe.kind == KINDS[mmaction_config.id]
    assert recipe.recognizer == cfg.model.type
    assert recipe.shapes(1) == expected(mmaction_config.id, cfg)
    assert recipe.num_classes == cfg.model.cls_head.num_classes
    assert recipe.assumed == ()  # each of the six says all the guard needs
    words = pass_sizes(recipe)['every pass']
    assert (words.startswith('RGB ') if recipe.kind == 'multimodal'
            else words.startswith(f'{cfg.model.type} {recipe.kind} '))


def test_batch_has_the_form_a_dataloader_gives(mmaction_config: MMActionConfig) -> None:
    cfg = load_config(mmaction_config.path, dict(mmaction_config.cfg_options))
    recipe = recipe_from_config(cfg, 'tiny', batch_size=3)
    batch = make_batch(recipe, views=2, meta=True)
    shapes = recipe.shapes(2)
    if recipe.input_kind.packed:
        assert {key: [t.shape for t in values] for key, values in batch['inputs'].items()} == {
            key: [torch.Size(shape)] * 3 for key, shape in shapes.items()}
    else:
        assert isinstance(batch['inputs'], list)
        assert [t.shape for t in batch['inputs']] == [torch.Size(*shapes.values())] * 3
    picked = select(batch, [2, 0])
    assert labels_of(picked) == [labels_of(batch)[2], labels_of(batch)[0]]


@pytest.mark.slow
def test_the_real_model_takes_the_batch(mmaction_config: MMActionConfig) -> None:
    """A context builds (no hierarchy asked of a head without coarse classes) and one loss and
    one predict pass of the config's own model run on the synthetic batch."""
    ctx = build_context(GuardSettings(config=mmaction_config.path,
                                      cfg_options=dict(mmaction_config.cfg_options),
                                      batch_size=2), fit=False)
    assert ctx.hierarchy is None
    model = ctx.model.train()
    losses = model(**preprocess(model, make_batch(ctx.recipe), True), mode='loss')
    total = sum(value for key, value in losses.items() if 'loss' in key)
    assert torch.isfinite(total) and total > 0
    model.eval()
    with torch.no_grad():
        batch = make_batch(ctx.recipe, views=2)
        predictions = model(**preprocess(model, batch, False), mode='predict')
    assert len(predictions) == 2
    assert [int(p.gt_label) for p in predictions] == labels_of(batch)


@pytest.mark.parametrize('mmaction_config, views', [('tsn', 1), ('tsm', 1)],
                         indirect=['mmaction_config'])
def test_test_views_of_a_2d_model_fold_its_segments(mmaction_config: MMActionConfig,
                                                    views: int) -> None:
    """TSM tests on 8 segments (one view of its 8); TSN on 25, no whole number of views of
    its 3 segments: one view, and the recipe says why."""
    cfg = load_config(mmaction_config.path, dict(mmaction_config.cfg_options))
    recipe = recipe_from_config(cfg, 'tiny')
    assert recipe.views == views
    test = _step(cfg, 'SampleFrames', 'test')
    folds = (test['clip_len'] * test['num_clips']) % recipe.rgb_frames == 0
    assert folds == (mmaction_config.id == 'tsm')
    assert any(note.startswith('views 1: ') for note in recipe.sources) != folds


def test_the_sampler_clip_length_of_each_kind(mmaction_config: MMActionConfig) -> None:
    """What a shrunk pipeline's sampler must take to make the tiny recipe's frames."""
    cfg = load_config(mmaction_config.path, dict(mmaction_config.cfg_options))
    recipe = recipe_from_config(cfg, 'tiny')
    frames = {'multimodal': {'RGB': recipe.rgb_frames, 'Pose': recipe.pose_frames},
              'NCHW': None, 'NCTHW': recipe.rgb_frames}.get(recipe.kind, recipe.pose_frames)
    assert sampler_clip_len(recipe) == frames
    if frames is not None:  # the frames one sample carries, views apart
        axes = recipe.input_kind.axes[0]
        assert recipe.shapes(1)[recipe.input_kind.keys[0]][axes.index('T')] == (
            frames['RGB'] if isinstance(frames, dict) else frames)
