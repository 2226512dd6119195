"""What the launch checks derive from a config for their synthetic data and tiny pipelines.

Key points per person (``_launch.keypoints_of``), views per sample
(``expected_views``) and the shrunk pipelines of the ``ddp`` check
(``shrink_pipelines``), on plain configs shaped like the shipped ones.
"""
from __future__ import annotations

import copy
from typing import Any

from mmengine.config import Config

from epam_guard.checks._launch import expected_views, keypoints_of, synthetic_config
from epam_guard.checks.ddp import shrink_pipelines
from epam_guard.model.batch import BatchRecipe


def tiny(kind: str, **sizes: Any) -> BatchRecipe:
    """A tiny recipe of ``kind``: 4 RGB / 16 pose frames, 64 x 64 crops."""
    values: dict[str, Any] = dict(rgb_frames=4, pose_frames=16, crop=64, heatmap=16,
                                  heatmap_channels=17, views=1, batch_size=2, num_classes=2)
    return BatchRecipe(**{**values, **sizes}, kind=kind)


def config(model: dict[str, Any], pipeline: list[Any], dataset: str = 'PoseDataset') -> Config:
    data = dict(type=dataset, ann_file='a', split='s', pipeline=pipeline)
    return Config(dict(model=model, **{f'{name}_dataloader': dict(dataset=copy.deepcopy(data))
                                       for name in ('train', 'val', 'test')}))


HEATMAPS = [dict(type='UniformSampleFrames', clip_len=48),
            dict(type='GeneratePoseTarget', with_kp=True, with_limb=False),
            dict(type='FormatShape', input_format='NCTHW_Heatmap')]


def test_key_points_from_a_named_layout_the_backbone_or_the_pipeline() -> None:
    gcn = dict(type='RecognizerGCN', backbone=dict(type='STGCN', graph_cfg=dict(layout='coco')))
    assert keypoints_of(config(gcn, [])) == (17, "backbone.graph_cfg.layout 'coco'")
    skeleton = [dict(type='GenSkeFeat', dataset='nturgb+d', feats=['j'])]
    assert keypoints_of(config(dict(backbone=dict(type='X')), skeleton))[0] == 25
    posec3d = dict(type='Recognizer3D', backbone=dict(type='ResNet3dSlowOnly', in_channels=28))
    assert keypoints_of(config(posec3d, HEATMAPS)) == (
        28, 'backbone.in_channels (one heat map per key point)')
    fork = dict(backbone=dict(pose_pathway=dict(in_channels=28)),
                data_preprocessor=dict(type='MultiModalDataPreprocessor'))
    assert keypoints_of(config(fork, HEATMAPS))[0] == 28
    flip = [dict(type='Flip', left_kp=[1, 3, 25], right_kp=[2, 4, 26])]
    assert keypoints_of(config(dict(backbone=dict()), flip))[0] == 27
    assert keypoints_of(config(dict(backbone=dict()), []))[1].startswith('assumed')


def test_limb_heat_maps_do_not_count_as_key_points() -> None:
    limbs = [dict(type='GeneratePoseTarget', with_kp=False, with_limb=True)]
    model = dict(type='Recognizer3D', backbone=dict(in_channels=19))
    assert keypoints_of(config(model, limbs))[1].startswith('assumed')


def test_views_count_crops_and_doubled_heat_maps() -> None:
    assert expected_views([dict(type='SampleFrames', num_clips=10),
                           dict(type='ThreeCrop', crop_size=256)]) == 30
    assert expected_views([dict(type='UniformSampleFrames', num_clips=10),
                           dict(type='GeneratePoseTarget', double=True)]) == 20


def test_synthetic_data_takes_the_heads_classes(tmp_path) -> None:
    model = dict(type='Recognizer3D', backbone=dict(in_channels=17), cls_head=dict(num_classes=7))
    cfg, data = synthetic_config(config(model, HEATMAPS), tmp_path, num_train=9, num_val=1)
    assert set(data.loader_labels['train_dataloader']) == set(range(7))
    assert cfg.train_dataloader.dataset.ann_file.startswith(str(tmp_path))


TSM: list[dict[str, Any]] = [
       dict(type='DecordInit'), dict(type='SampleFrames', clip_len=1, num_clips=8),
       dict(type='DecordDecode'), dict(type='Resize', scale=(-1, 256)),
       dict(type='MultiScaleCrop', input_size=224, scales=(1, 0.875)),
       dict(type='Resize', scale=(224, 224), keep_ratio=False),
       dict(type='FormatShape', input_format='NCHW'), dict(type='PackActionInputs')]


def test_tiny_pipelines_keep_every_transform_and_a_2d_models_segments() -> None:
    cfg = config(dict(type='Recognizer2D'), TSM, 'VideoDataset')
    cfg.test_dataloader.dataset.pipeline[4] = dict(type='TenCrop', crop_size=224)
    changed = shrink_pipelines(cfg, tiny('NCHW'))
    train = cfg.train_dataloader.dataset.pipeline
    assert [step['type'] for step in train] == [step['type'] for step in TSM]
    assert (train[1]['clip_len'], train[1]['num_clips']) == (1, 8)
    assert (train[3]['scale'], train[4]['input_size'], train[5]['scale']) == ((-1, 64), 64,
                                                                            (64, 64))
    assert cfg.test_dataloader.dataset.pipeline[4]['crop_size'] == 64
    assert 'train_dataloader.SampleFrames' not in changed
    assert 'test_dataloader.TenCrop' in changed


def test_tiny_pipelines_give_each_kind_the_recipes_frames() -> None:
    slowonly = [dict(type='SampleFrames', clip_len=8, frame_interval=8, num_clips=1),
                dict(type='FormatShape', input_format='NCTHW')]
    cfg = config(dict(type='Recognizer3D'), slowonly, 'VideoDataset')
    shrink_pipelines(cfg, tiny('NCTHW'))
    assert cfg.train_dataloader.dataset.pipeline[0]['clip_len'] == 4
    cfg = config(dict(type='Recognizer3D'), slowonly, 'VideoDataset')
    shrink_pipelines(cfg, tiny('NCTHW', keep_time=True))  # the model needs its own frames
    assert cfg.train_dataloader.dataset.pipeline[0]['clip_len'] == 8
    mm = [dict(type='MMUniformSampleFrames', clip_len=dict(RGB=8, Pose=32))]
    cfg = config(dict(type='MMRecognizer3D'), mm)
    shrink_pipelines(cfg, tiny('multimodal'))
    assert cfg.val_dataloader.dataset.pipeline[0]['clip_len'] == {'RGB': 4, 'Pose': 16}


def test_tiny_pipelines_reach_inside_a_repeat_dataset() -> None:
    cfg = config(dict(type='RecognizerGCN'), [dict(type='UniformSampleFrames', clip_len=100),
                                              dict(type='FormatGCNInput', num_person=2)])
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=5,
                                        dataset=cfg.train_dataloader.dataset)
    shrink_pipelines(cfg, tiny('GCN'))
    assert cfg.train_dataloader.dataset.dataset.pipeline[0]['clip_len'] == 16


def test_a_repeat_dataset_passes_over_its_data_once() -> None:
    from epam_guard.checks._launch import unrepeated

    cfg = config(dict(type='RecognizerGCN'), [])
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=5,
                                        dataset=cfg.train_dataloader.dataset)
    assert unrepeated(cfg) == ['train_dataloader.dataset.times=5']
    assert cfg.train_dataloader.dataset.times == 1
    assert unrepeated(cfg) == []
