# The default config with one transform parameter lost in one pipeline: the
# validation GeneratePoseTarget has no `scaling`, so it makes heat maps at the
# crop's own size (MMAction2's default scaling is 1) where training makes them
# at a quarter of it. Training runs; the first validation dies in the pose
# attention.
_base_ = ['../../../configs/epam_ntu60.py']

val_pipeline = [
    dict(type='MMUniformSampleFrames', clip_len=dict(RGB=16, Pose=48), num_clips=1,
         test_mode=True),
    dict(type='MMDecode'),
    dict(type='MMCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='CenterCrop', crop_size=224),
    dict(type='GeneratePoseTarget', sigma=0.7, use_score=True, with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs', collect_keys=('imgs', 'heatmap_imgs')),
]
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
