"""The shape pass: each pipeline's packed shapes from its transforms' parameters alone."""
from __future__ import annotations

import inspect

import pytest

from epam_guard.model.pipeline_shapes import DEFAULT_LIMBS, DEFAULTS, derive, derive_config

CLIP = {'RGB': 16, 'Pose': 48}
TARGET = dict(type='GeneratePoseTarget', with_kp=True, with_limb=False, scaling=0.25)
PACK = dict(type='PackActionInputs', collect_keys=('imgs', 'heatmap_imgs'))


def pipeline(*middle: dict, clips: int = 1, target: dict = TARGET, pack: dict = PACK) -> list:
    """Sampler, decoder, compact, ``middle``, heat maps, format, pack (the NTU-60 layout)."""
    return [dict(type='MMUniformSampleFrames', clip_len=CLIP, num_clips=clips),
            dict(type='MMDecode'), dict(type='MMCompact', hw_ratio=1.),
            *middle, target, dict(type='FormatShape', input_format='NCTHW'), pack]


FIXED = (dict(type='Resize', scale=(256, 256), keep_ratio=False),
         dict(type='CenterCrop', crop_size=224))


def test_the_default_configs_pipelines():
    from mmengine.config import Config

    from epam_guard.model.context import default_config_path

    found = derive_config(Config.fromfile(str(default_config_path())))
    assert {split: d.inputs for split, d in found.items()} == {
        'train': {'imgs': (1, 3, 16, 224, 224), 'heatmap_imgs': (1, 17, 48, 56, 56)},
        'val': {'imgs': (1, 3, 16, 224, 224), 'heatmap_imgs': (1, 17, 48, 56, 56)},
        'test': {'imgs': (5, 3, 16, 224, 224), 'heatmap_imgs': (5, 17, 48, 56, 56)}}
    assert all(d.stopped is None and not d.problems for d in found.values())


def test_scaling_clips_crops_and_limbs_follow_the_parameters():
    target = {**TARGET, 'scaling': 0.5, 'with_limb': True}
    found = derive(pipeline(*FIXED, dict(type='ThreeCrop', crop_size=(192, 160)), clips=2,
                            target=target))
    # ThreeCrop's (w, h) crop: 2 clips x 3 crops of RGB; heat maps of the cropped frame's size
    assert found.inputs == {'imgs': (6, 3, 16, 160, 192),
                            'heatmap_imgs': (2, 17 + DEFAULT_LIMBS, 48, 80, 96)}


def test_a_resize_keeping_the_ratio_of_a_random_crop_cannot_be_sized():
    found = derive(pipeline(dict(type='RandomResizedCrop'),
                            dict(type='Resize', scale=(-1, 256))))
    # The resize leaves the size to chance (a later fixed-size step could still settle it);
    # the heat maps that need it stop the pass.
    assert found.inputs is None
    assert found.stopped == ('transform 6 (GeneratePoseTarget): GeneratePoseTarget needs the '
                             'frame size, which depends on chance (RandomResizedCrop) here (no '
                             'fixed-size Resize or crop after it)')


def test_a_fixed_size_step_after_a_ratio_keeping_resize_settles_the_size():
    found = derive(pipeline(dict(type='Resize', scale=(-1, 256)),
                            dict(type='CenterCrop', crop_size=224)))
    assert found.inputs == {'imgs': (1, 3, 16, 224, 224), 'heatmap_imgs': (1, 17, 48, 56, 56)}


def test_a_square_compacting_box_sizes_a_short_side_resize():
    # PoseC3D: PoseCompact(hw_ratio=1.) then Resize(scale=(-1, 64)) makes 64x64 frames
    found = derive([dict(type='UniformSampleFrames', clip_len=48), dict(type='PoseDecode'),
                    dict(type='PoseCompact', hw_ratio=1.), dict(type='Resize', scale=(-1, 64)),
                    dict(type='GeneratePoseTarget'),
                    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
                    dict(type='PackActionInputs')])
    assert found.inputs == (1, 17, 48, 64, 64) and found.stopped is None


def test_skeletons_for_a_graph_network():
    found = derive([dict(type='GenSkeFeat', dataset='coco', feats=['j', 'b']),
                    dict(type='UniformSampleFrames', clip_len=100, num_clips=2),
                    dict(type='PoseDecode'), dict(type='FormatGCNInput', num_person=2),
                    dict(type='PackActionInputs')])
    # (clips, persons, frames, COCO's 17 joints, 3 coordinates x 2 features)
    assert found.inputs == (2, 2, 100, 17, 6) and found.stopped is None


def test_segments_of_a_2d_model():
    found = derive([dict(type='SampleFrames', clip_len=1, num_clips=8),
                    dict(type='DecordDecode'), dict(type='Resize', scale=(-1, 256)),
                    dict(type='TenCrop', crop_size=224),
                    dict(type='FormatShape', input_format='NCHW'),
                    dict(type='PackActionInputs')])
    assert found.inputs == (80, 3, 224, 224)


def test_an_unknown_transform_stops_the_pass_and_says_where():
    found = derive(pipeline(*FIXED, dict(type='MyForkCrop', side=100)), 'test')
    assert found.inputs is None and not found.problems
    assert found.stopped.startswith('transform 6 (MyForkCrop): unknown to the shape pass')


def test_a_key_no_transform_makes_is_a_problem():
    found = derive([dict(type='MMUniformSampleFrames', clip_len=CLIP), dict(type='MMDecode'),
                    *FIXED, dict(type='FormatShape', input_format='NCTHW'), PACK])
    assert found.problems == ['PackActionInputs collects heatmap_imgs, which no transform before '
                              'it makes (GeneratePoseTarget makes heatmap_imgs once the video is '
                              'decoded)']


def test_doubled_heatmaps_double_their_views():
    sampler = dict(type='MMUniformSampleFrames', clip_len=CLIP)
    found = derive([sampler, dict(type='MMDecode'), *FIXED, {**TARGET, 'double': True},
                    dict(type='FormatShape', input_format='NCTHW'), PACK])
    # double=True stacks flipped heat maps: twice the views of RGB
    assert found.inputs == {'imgs': (1, 3, 16, 224, 224), 'heatmap_imgs': (2, 17, 48, 56, 56)}


@pytest.mark.parametrize('kind', sorted(DEFAULTS))
def test_the_defaults_are_mmactions_own(kind):
    """The shape pass reads no dataset code; its defaults are checked against it here."""
    from mmaction.registry import TRANSFORMS
    from mmengine.registry import init_default_scope

    init_default_scope('mmaction')
    signature = inspect.signature(TRANSFORMS.get(kind).__init__)
    assert {name: signature.parameters[name].default for name in DEFAULTS[kind]} == DEFAULTS[kind]
    if kind == 'GeneratePoseTarget':
        assert len(signature.parameters['skeletons'].default) == DEFAULT_LIMBS
