# A researcher's RGB + pose fork on a 28-keypoint dataset: 52 fine actions in 7 coarse
# groups, 8 RGB / 32 pose frames (pose:RGB 4:1), its own classes from the plugin package
# `epam_fork28` (not installed: pass its folder with --import-path), its own AccMetric,
# and no `hierarchy` argument (pass the grouping with --hierarchy hierarchy52.json).
# Planted defects are switched on with --cfg-options (see epam_fork28's docstring).
custom_imports = dict(imports=['epam_fork28'], allow_failed_imports=False)
default_scope = 'mmaction'

num_classes = 52
num_coarse_classes = 7
keypoints = 28

model = dict(
    type='Fork28Recognizer',
    backbone=dict(
        type='Fork28Backbone',
        rgb_pathway=dict(in_channels=3, channels=16),
        pose_pathway=dict(in_channels=keypoints, channels=8)),
    cls_head=dict(
        type='Fork28Head',
        num_classes=num_classes,
        num_coarse_classes=num_coarse_classes,
        in_channels=[16, 8]),
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        preprocessors=dict(
            imgs=dict(type='ActionDataPreprocessor', format_shape='NCTHW',
                      mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
            heatmap_imgs=dict(type='ActionDataPreprocessor'))))

clip_len = dict(RGB=8, Pose=32)
# GeneratePoseTarget makes one heat map per key point of the data: it does not say how many.
pose_target = dict(type='GeneratePoseTarget', with_kp=True, sigma=0.7, scaling=0.25)
pack = dict(type='PackActionInputs', collect_keys=('imgs', 'heatmap_imgs'))
# The test pipeline is the train one with 2 clips, a centre crop and no augmentation.
decode = [dict(type='MMDecode'), dict(type='MMCompact', hw_ratio=1., allow_imgpad=True),
          dict(type='Resize', scale=(256, 256), keep_ratio=False)]
finish = [pose_target, dict(type='FormatShape', input_format='NCTHW'), pack]
train_pipeline = [dict(type='MMUniformSampleFrames', clip_len=clip_len, num_clips=1), *decode,
                  dict(type='RandomResizedCrop', area_range=(0.56, 1.0)),
                  dict(type='Resize', scale=(224, 224), keep_ratio=False), *finish]
test_pipeline = [dict(type='MMUniformSampleFrames', clip_len=clip_len, num_clips=2,
                      test_mode=True), *decode, dict(type='CenterCrop', crop_size=224), *finish]
dataset_type = 'PoseDataset'
ann_file = 'data/skeleton/fork28_2d.pkl'
train_dataloader = dict(
    batch_size=8, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, ann_file=ann_file, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ann_file, split='val', pipeline=test_pipeline,
                 test_mode=True))
test_dataloader = val_dataloader
val_evaluator = [dict(type='AccMetric')]  # the fork's own: it fuses 4 score keys
test_evaluator = val_evaluator

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='acc/RGBPose_1:1_top1'))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=24, val_begin=1, val_interval=2)
val_cfg, test_cfg = dict(type='ValLoop'), dict(type='TestLoop')
