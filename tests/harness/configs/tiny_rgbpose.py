"""A generic MMAction2 RGB + pose recognizer, small enough for broken-variant tests.

MMAction2's own ``MMRecognizer3D``, ``RGBPoseHead``,
``MultiModalDataPreprocessor``, pipelines of the RGBPoseConv3D kind and stock
``AccMetric``; only the backbone is the test's own (``GuardTinyRGBPoseBackbone``
in ``generic_variants.py``: two 3-D convolutions of the same interface as
``RGBPoseConv3D``), so a check runs in about a second. The guard judges it by
the ``mmaction2`` contract profile.
"""
default_scope = 'mmaction'
custom_imports = dict(imports=['generic_variants'], allow_failed_imports=False)

model = dict(
    type='MMRecognizer3D',
    backbone=dict(type='GuardTinyRGBPoseBackbone', width=8, pose_in_channels=17),
    cls_head=dict(type='RGBPoseHead', num_classes=60, in_channels=[8, 8],
                  loss_components=['rgb', 'pose'], loss_weights=[1., 1.],
                  average_clips='prob'),
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        preprocessors=dict(
            imgs=dict(type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53],
                      std=[58.395, 57.12, 57.375], format_shape='NCTHW'),
            heatmap_imgs=dict(type='ActionDataPreprocessor'))))


def _pipeline(num_clips, test_mode):
    return [
        dict(type='MMUniformSampleFrames', clip_len=dict(RGB=4, Pose=16),
             num_clips=num_clips, test_mode=test_mode),
        dict(type='MMDecode'),
        dict(type='MMCompact', hw_ratio=1., allow_imgpad=True),
        dict(type='Resize', scale=(64, 64), keep_ratio=False),
        dict(type='GeneratePoseTarget', sigma=0.7, use_score=True, with_kp=True,
             with_limb=False, scaling=0.25),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs', collect_keys=('imgs', 'heatmap_imgs')),
    ]


train_pipeline = _pipeline(1, False)
val_pipeline = _pipeline(1, True)
test_pipeline = _pipeline(2, True)


def _loader(pipeline, split, test_mode):
    return dict(batch_size=2, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=not test_mode),
                dataset=dict(type='PoseDataset', ann_file='data/skeleton/ntu60_2d.pkl',
                             data_prefix=dict(video='data/nturgbd_videos/'), split=split,
                             pipeline=pipeline, test_mode=test_mode))


train_dataloader = _loader(train_pipeline, 'xsub_train', False)
val_dataloader = _loader(val_pipeline, 'xsub_val', True)
test_dataloader = _loader(test_pipeline, 'xsub_val', True)
val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                     save_best='acc/RGBPose_1:1_top1', rule='greater'))
load_from = None
