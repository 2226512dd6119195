# A researcher's EPAM fork on NTU-60 (MMAction2 1.1 API): its own EPAMRecognizer,
# EPAMBackbone and head from the plugin package `epam_fork` (not installed: pass
# its folder with --import-path). Clip lengths 16 RGB / 48 pose frames are fixed
# by the backbone.
custom_imports = dict(imports=['epam_fork'], allow_failed_imports=False)
default_scope = 'mmaction'

num_classes = 60
# Guard-only settings (never passed to the model): the fork's recognizer takes
# no `hierarchy` argument, so the guard is told the NTU-60 grouping here, as
# the coarse class of each fine label.
epam_guard = dict(
    label_api='gt_labels',  # this fork reads gt_labels.item, on any MMAction2
    hierarchy=[0] * 10 + [1] * 10 + [2] * 10 + [3] * 10 + [4] * 5 + [5] * 5 + [6] * 5 + [7] * 5)

model = dict(
    type='EPAMRecognizer',
    backbone=dict(type='EPAMBackbone', rgb_channels=16, pose_channels=8, heatmap_channels=17),
    cls_head=dict(
        type='EPAMForkHead',
        num_classes=num_classes,
        in_channels=[16, 8],
        loss_weights=[1.0, 1.2, 0.5, 0.9]),
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        preprocessors=dict(
            imgs=dict(
                type='ActionDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                format_shape='NCTHW'),
            heatmap_imgs=dict(type='ActionDataPreprocessor'))))

dataset_type = 'PoseDataset'
ann_file = 'data/skeleton/ntu60_2d.pkl'
clip_len = dict(RGB=16, Pose=48)
pose_target = dict(
    type='GeneratePoseTarget', sigma=0.7, use_score=True, with_kp=True, with_limb=False,
    scaling=0.25)
pack = dict(type='PackActionInputs', collect_keys=('imgs', 'heatmap_imgs'))
train_pipeline = [
    dict(type='MMUniformSampleFrames', clip_len=clip_len, num_clips=1),
    dict(type='MMDecode'),
    dict(type='MMCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='RandomResizedCrop', area_range=(0.56, 1.0)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    pose_target,
    dict(type='FormatShape', input_format='NCTHW'),
    pack,
]
test_pipeline = [
    dict(type='MMUniformSampleFrames', clip_len=clip_len, num_clips=2, test_mode=True),
    dict(type='MMDecode'),
    dict(type='MMCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='CenterCrop', crop_size=224),
    pose_target,
    dict(type='FormatShape', input_format='NCTHW'),
    pack,
]
train_dataloader = dict(
    batch_size=8, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, ann_file=ann_file, split='xsub_train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ann_file, split='xsub_val',
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='acc/RGBPose_1:1_top1'))
