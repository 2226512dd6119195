"""``epam_guard.model.batch``: sizes read from a config's pipelines, synthetic batches, labels."""
from __future__ import annotations

import pytest
import torch
from mmengine.config import ConfigDict

from epam_guard.contract.errors import SizeError
from epam_guard.model.batch import (
    BatchRecipe,
    labels_of,
    make_batch,
    pipeline_of,
    preprocess,
    read_label,
    recipe_from_config,
    select,
    shrink,
    step_of,
    synthetic_labels,
)


def config(rgb: int = 16, pose: int = 48, crop: int = 224, scaling: float = 0.25,
           num_clips: int = 5, in_channels: int = 17) -> ConfigDict:
    """The parts of an NTU-60 config that the recipe reads, nothing else."""
    sampler = dict(type='MMUniformSampleFrames', clip_len=dict(RGB=rgb, Pose=pose))
    train = [sampler, dict(type='GeneratePoseTarget', scaling=scaling, with_kp=True),
             dict(type='Resize', scale=(crop, crop), keep_ratio=False)]
    test = [dict(sampler, num_clips=num_clips), dict(type='CenterCrop', crop_size=crop)]
    return ConfigDict(
        train_dataloader=dict(dataset=dict(pipeline=train)),
        test_pipeline=test,
        model=dict(backbone=dict(pose_stream=dict(in_channels=in_channels)),
                   cls_head=dict(num_classes=60)))


def limbs_config(in_channels: int) -> ConfigDict:
    """Heat maps of GeneratePoseTarget's 17 default limbs only: the pipeline fixes the count."""
    cfg = config(in_channels=in_channels)
    cfg.train_dataloader.dataset.pipeline[1].update(with_kp=False, with_limb=True)
    return cfg


def test_channels_follow_the_model_under_whatever_name_it_gives_its_streams():
    """A 28-keypoint fork: GeneratePoseTarget does not fix the key points, the backbone does."""
    cfg = config()
    cfg.model.backbone = dict(pose_pathway=dict(in_channels=28), rgb_pathway=dict(in_channels=3))
    recipe = recipe_from_config(cfg, size='tiny')
    assert (recipe.heatmap_channels, recipe.rgb_channels) == (28, 3)
    assert recipe.shapes()['heatmap_imgs'][1] == 28 and recipe.shapes()['imgs'][1] == 3
    assert recipe.sources == ('heat-map channels 28 from backbone.pose_pathway.in_channels',
                              'RGB channels 3 from backbone.rgb_pathway.in_channels')
    assert recipe.assumed == ()
    cfg.model.backbone = dict(heatmap_channels=25, pose_channels=8)  # a flat key; not widths
    cfg.model.data_preprocessor = dict(preprocessors=dict(imgs=dict(mean=[1, 2, 3])))
    assert recipe_from_config(cfg).heatmap_channels == 25
    assert recipe_from_config(cfg).rgb_channels == 3  # from the preprocessor's mean, not 25


def test_channels_the_pipeline_fixes_win_and_what_nobody_says_is_assumed_aloud():
    cfg = limbs_config(in_channels=17)
    assert recipe_from_config(cfg).sources[0] == \
        'heat-map channels 17 from GeneratePoseTarget limbs (skeletons)'
    cfg = config()
    cfg.model.backbone = {}
    recipe = recipe_from_config(cfg)
    assert recipe.heatmap_channels == 17
    assert recipe.assumed == ('heat-map channels 17 (17 COCO key points): GeneratePoseTarget '
                              'does not fix the key points and the backbone declares no pose '
                              'input channels', 'RGB channels 3: neither the backbone nor the '
                              'data preprocessor says')
    cfg.model.data_preprocessor = dict(preprocessors=dict(imgs=dict(mean=[0.5])))
    assert recipe_from_config(cfg).rgb_channels == 1


def test_a_recipe_from_json_is_still_a_cache_key():
    recipe = recipe_from_config(config())
    again = BatchRecipe(**{**recipe.__dict__, 'sources': list(recipe.sources)})
    assert again == recipe and hash(again) == hash(recipe)


def test_ntu_sizes_come_from_the_pipelines():
    recipe = recipe_from_config(config(), size='ntu', batch_size=3)
    assert (recipe.rgb_frames, recipe.pose_frames, recipe.crop, recipe.heatmap) == \
        (16, 48, 224, 56)
    assert (recipe.views, recipe.batch_size, recipe.num_classes, recipe.heatmap_channels) == \
        (5, 3, 60, 17)
    assert recipe.shapes(views=2) == {'imgs': (2, 3, 16, 224, 224),
                                      'heatmap_imgs': (2, 17, 48, 56, 56)}


def test_tiny_keeps_channels_and_ratios():
    recipe = recipe_from_config(config(), size='tiny')
    assert (recipe.rgb_frames, recipe.pose_frames, recipe.crop, recipe.heatmap) == (4, 12, 64, 16)
    assert shrink(recipe) == recipe  # shrinking twice changes nothing


def test_views_can_be_given():
    assert recipe_from_config(config(), views=2).views == 2


@pytest.mark.parametrize('cfg, settings, message', [
    (config(pose=40), {}, 'not a multiple of the RGB clip length'),
    (config(scaling=0.5), {}, 'do not meet'),
    (limbs_config(in_channels=20), {}, 'makes 17 heat-map channels .* '
                                        'backbone.pose_stream.in_channels is 20'),
    (config(), {'batch_size': 0}, '--batch-size must be at least 1'),
    (config(), {'size': 'huge'}, '--size must be tiny or ntu'),
])
def test_sizes_the_backbone_cannot_take_are_refused(cfg, settings, message):
    with pytest.raises(SizeError, match=message):
        recipe_from_config(cfg, **settings)


def test_pipeline_lookup_prefers_the_dataloader_and_falls_back_to_the_variable():
    cfg = config()
    assert step_of(pipeline_of(cfg, 'train'), ('Resize',))['scale'] == (224, 224)
    assert step_of(pipeline_of(cfg, 'test'), ('CenterCrop',))['crop_size'] == 224
    assert pipeline_of(cfg, 'val') == []
    assert step_of([], ('Resize',)) is None


def test_synthetic_labels_are_distinct_and_start_at_zero():
    labels = synthetic_labels(8, 60)
    assert labels[0] == 0 and len(set(labels)) == 8 and max(labels) < 60


def recipe(**changes) -> BatchRecipe:
    base = dict(rgb_frames=2, pose_frames=6, crop=32, heatmap=8, heatmap_channels=17,
                views=2, batch_size=3, num_classes=60)
    return BatchRecipe(**{**base, **changes})


def test_make_batch_is_deterministic_and_shaped_per_sample():
    first, again = make_batch(recipe(), views=2), make_batch(recipe(), views=2)
    assert len(first['inputs']['imgs']) == 3
    assert first['inputs']['imgs'][0].shape == (2, 3, 2, 32, 32)
    assert first['inputs']['heatmap_imgs'][0].shape == (2, 17, 6, 8, 8)
    assert all(torch.equal(a, b) for a, b in zip(first['inputs']['imgs'], again['inputs']['imgs']))
    assert labels_of(first) == synthetic_labels(3, 60)
    assert float(first['inputs']['imgs'][0].max()) > 1  # pixels before normalisation


@pytest.mark.parametrize('api', ['gt_label', 'gt_labels'])
def test_both_label_apis_are_written_and_read(api):
    batch = make_batch(recipe(label_api=api), labels=[4, 9])
    assert labels_of(batch) == [4, 9]
    assert (api in batch['data_samples'][0]) and read_label(batch['data_samples'][1]) == 9


def test_select_picks_samples_and_their_inputs_together():
    batch = make_batch(recipe(), labels=[1, 2, 3])
    picked = select(batch, [2, 0])
    assert labels_of(picked) == [3, 1]
    assert picked['inputs']['imgs'][0] is batch['inputs']['imgs'][2]


def test_preprocess_hands_the_model_fresh_containers():
    batch = make_batch(recipe(), labels=[1, 2])

    class Model:
        def data_preprocessor(self, data: dict, training: bool) -> dict:
            data['inputs']['imgs'].clear()  # as MMAction2's preprocessors rewrite their input
            data['data_samples'][0].set_gt_label(7)
            return {'training': training}

    assert preprocess(Model(), batch, training=True) == {'training': True}
    assert len(batch['inputs']['imgs']) == 2 and labels_of(batch) == [1, 2]


def kind_config(model: dict, train: list) -> ConfigDict:
    return ConfigDict(model=dict(cls_head=dict(num_classes=10), **model),
                      train_dataloader=dict(dataset=dict(pipeline=train)))


@pytest.mark.parametrize('model, train, kind, source', [
    # the data preprocessor first (as written, or its class's default format_shape)
    (dict(type='Recognizer2D', data_preprocessor=dict(type='ActionDataPreprocessor')), [],
     'NCHW', "ActionDataPreprocessor's default format_shape='NCHW'"),
    (dict(data_preprocessor=dict(type='MultiModalDataPreprocessor')), [], 'multimodal',
     'data_preprocessor MultiModalDataPreprocessor'),
    # then the pipeline's formatting; a same-layout kind the pipeline names more closely wins
    (dict(type='Recognizer3D'), [dict(type='FormatShape', input_format='NCTHW_Heatmap')],
     'NCTHW_Heatmap', "FormatShape(input_format='NCTHW_Heatmap')"),
    (dict(type='Recognizer3D', data_preprocessor=dict(format_shape='NCTHW')),
     [dict(type='FormatShape', input_format='NCTHW_Heatmap')], 'NCTHW_Heatmap',
     "FormatShape(input_format='NCTHW_Heatmap')"),
    (dict(type='MyRecognizer'), [dict(type='FormatGCNInput')], 'GCN', 'FormatGCNInput'),
    # then the recognizer's type
    (dict(type='RecognizerGCN'), [], 'GCN', 'recognizer RecognizerGCN'),
    (dict(type='Recognizer3D'), [], 'NCTHW', 'recognizer Recognizer3D'),
])
def test_the_kind_comes_from_the_config(model, train, kind, source):
    from epam_guard.model.kinds import kind_of

    decision = kind_of(kind_config(model, train), train)
    assert (decision.kind.name, decision.source, decision.assumed) == (kind, source, None)


def test_a_config_that_names_no_kind_gets_the_default_and_says_so():
    from epam_guard.model.kinds import DEFAULT_KIND, kind_of

    decision = kind_of(kind_config(dict(type='MyRecognizer'), []), [])
    assert decision.kind.name == DEFAULT_KIND and 'neither the pipelines' in decision.assumed


def test_every_kind_has_one_axis_string_and_stream_per_key():
    from epam_guard.model.batch import VALUE_RANGES
    from epam_guard.model.kinds import KINDS

    for kind in KINDS.values():
        assert len(kind.keys) == len(kind.axes) == len(kind.streams), kind.name
        assert set(kind.streams) <= set(VALUE_RANGES), kind.name


def test_skeletons_take_persons_joints_and_coordinates_from_the_config():
    """STGCN's layout: joints from the graph (MMAction2's Graph), coordinates from in_channels
    (STGCN's default 3 when the config writes none), persons from FormatGCNInput."""
    train = [dict(type='UniformSampleFrames', clip_len=30), dict(type='PoseDecode'),
             dict(type='FormatGCNInput', num_person=3), dict(type='PackActionInputs')]
    cfg = kind_config(dict(type='RecognizerGCN', backbone=dict(
        type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='stgcn_spatial'))), train)
    recipe = recipe_from_config(cfg, 'ntu')
    assert recipe.shapes(2) == {'keypoint': (2, 3, 30, 25, 3)}
    assert 'coordinates 3 from STGCN\'s default in_channels' in recipe.sources
    cfg.model.backbone.in_channels = 6
    assert recipe_from_config(cfg, 'tiny').shapes(1) == {'keypoint': (1, 3, 4, 25, 6)}


def test_segments_of_a_2d_model_are_kept_at_tiny():
    train = [dict(type='SampleFrames', clip_len=2, num_clips=4),
             dict(type='Resize', scale=(160, 160), keep_ratio=False),
             dict(type='FormatShape', input_format='NCHW'), dict(type='PackActionInputs')]
    cfg = kind_config(dict(type='Recognizer2D', data_preprocessor=dict(
        type='ActionDataPreprocessor', mean=[0, 0, 0, 0])), train)
    recipe = recipe_from_config(cfg, 'tiny')
    assert recipe.shapes(1) == {'imgs': (8, 4, 64, 64)}  # 2 x 4 segments; 4 channels (mean)
    assert recipe.shapes(3)['imgs'][0] == 24  # views multiply the segments
    batch = make_batch(recipe, views=1)
    assert isinstance(batch['inputs'], list) and len(batch['inputs']) == recipe.batch_size
    assert all(float(t.min()) >= 0 and float(t.max()) <= 255 for t in batch['inputs'])


def test_a_clip_length_the_config_does_not_give_is_assumed_and_listed():
    cfg = kind_config(dict(type='Recognizer3D'), [])
    recipe = recipe_from_config(cfg, 'ntu')
    assert any(note.startswith('clip length 8') for note in recipe.assumed)


def test_doubled_heat_maps_keep_their_channels():
    """GeneratePoseTarget(double=True) stacks flipped heat maps along the frames (MMAction2)."""
    from epam_guard.model.batch import heatmap_channels

    target = dict(type='GeneratePoseTarget', with_kp=True, double=True,
                  left_kp=[1, 3], right_kp=[2, 16])
    assert heatmap_channels(target, {})[0] == 17
    assert heatmap_channels(target, dict(pose_stream=dict(in_channels=28)))[0] == 28
