# EPAM-Net on NTU-60 cross-subject: an X-ShiftNet RGB stream (16x224x224)
# guided by a pose heat-map stream (48x56x56), with a hierarchical
# (60 fine / 8 coarse) classification head.
#
# Data locations are plain variables (data_root, ann_file). MMEngine resolves
# them when it parses this file, so on the command line override the keys that
# use them, for each of train/val/test_dataloader:
#   --cfg-options train_dataloader.dataset.ann_file=/data/ntu60_2d.pkl \
#                 train_dataloader.dataset.data_prefix.video=/data/nturgbd_videos/ ...
# (`python -m epam_guard.fixtures OUT_DIR` prints the full set for its synthetic data.)
custom_imports = dict(imports=['epam'], allow_failed_imports=False)
default_scope = 'mmaction'

# ---------------------------------------------------------------- labels
num_classes = 60
num_coarse_classes = 8
# Fine NTU-60 classes -> 8 coarse groups (inclusive label ranges). The model
# reads this one definition for `gt_coarse` and for every loss of the head.
label_hierarchy = dict(
    num_classes=num_classes,
    groups=[[0, 9], [10, 19], [20, 29], [30, 39], [40, 44], [45, 49],
            [50, 54], [55, 59]])

# ---------------------------------------------------------------- model
clip_len_rgb = 16
clip_len_pose = 48  # 3 pose frames per RGB frame
model = dict(
    type='EPAMRecognizer',
    hierarchy=label_hierarchy,
    backbone=dict(
        type='EPAMBackbone',
        rgb_stream=dict(
            type='XShiftNet',
            gamma_w=1,
            gamma_b=2.25,
            gamma_d=2.2,
            shift_div=8),
        pose_stream=dict(
            type='PoseXShiftNet',
            in_channels=17,
            base_channels=24,
            stage_blocks=(5, 11, 7),
            shift_div=8),
        attention=dict(type='spatial_temporal'),
        rgb_pretrained=None,
        pose_pretrained=None),
    cls_head=dict(
        type='EPAMHierarchicalHead',
        num_classes=num_classes,
        num_coarse_classes=num_coarse_classes,
        in_channels=[432, 216],
        loss_components=['rgb', 'pose', 'rgb_coarse', 'pose_coarse'],
        loss_weights=[1.0, 1.2, 0.5, 0.9],
        dropout=0.5,
        average_clips='prob'),
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        preprocessors=dict(
            imgs=dict(
                type='ActionDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                format_shape='NCTHW'),
            heatmap_imgs=dict(type='ActionDataPreprocessor'))))

# ---------------------------------------------------------------- data
dataset_type = 'PoseDataset'
data_root = 'data/nturgbd_videos/'
ann_file = 'data/skeleton/ntu60_2d.pkl'
left_kp = [1, 3, 5, 7, 9, 11, 13, 15]
right_kp = [2, 4, 6, 8, 10, 12, 14, 16]
clip_len = dict(RGB=clip_len_rgb, Pose=clip_len_pose)
pose_target = dict(
    type='GeneratePoseTarget',
    sigma=0.7,
    use_score=True,
    with_kp=True,
    with_limb=False,
    scaling=0.25)
pack = dict(type='PackActionInputs', collect_keys=('imgs', 'heatmap_imgs'))

train_pipeline = [
    dict(type='MMUniformSampleFrames', clip_len=clip_len, num_clips=1),
    dict(type='MMDecode'),
    dict(type='MMCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='RandomResizedCrop', area_range=(0.56, 1.0)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, left_kp=left_kp, right_kp=right_kp),
    pose_target,
    dict(type='FormatShape', input_format='NCTHW'),
    pack,
]
val_pipeline = [
    dict(
        type='MMUniformSampleFrames',
        clip_len=clip_len,
        num_clips=1,
        test_mode=True),
    dict(type='MMDecode'),
    dict(type='MMCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='CenterCrop', crop_size=224),
    pose_target,
    dict(type='FormatShape', input_format='NCTHW'),
    pack,
]
test_pipeline = [
    dict(
        type='MMUniformSampleFrames',
        clip_len=clip_len,
        num_clips=5,
        test_mode=True),
    dict(type='MMDecode'),
    dict(type='MMCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='CenterCrop', crop_size=224),
    pose_target,
    dict(type='FormatShape', input_format='NCTHW'),
    pack,
]

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        data_prefix=dict(video=data_root),
        split='xsub_train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        data_prefix=dict(video=data_root),
        split='xsub_val',
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file,
        data_prefix=dict(video=data_root),
        split='xsub_val',
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = [dict(type='AccMetric')]
test_evaluator = val_evaluator

# ---------------------------------------------------------------- schedule
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=50, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=40, norm_type=2))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=50,
        by_epoch=True,
        milestones=[20, 40],
        gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=64)

# ---------------------------------------------------------------- runtime
default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=1, save_best='acc/RGBPose_1:1_top1'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
