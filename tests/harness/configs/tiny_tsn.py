"""A generic MMAction2 2-D recognizer (TSN's kind), small enough for broken-variant tests.

MMAction2's own ``Recognizer2D``, ``TSNHead``, ``ActionDataPreprocessor`` and
video pipelines of TSN's kind (three segments); only the backbone is the
test's own (``GuardTinyBackbone2D`` in ``generic_variants.py``). The guard
judges it by the ``mmaction2`` contract profile.
"""
_base_ = ['tiny_rgbpose.py']  # the schedule, evaluator and runtime; model and data here

model = dict(
    _delete_=True,
    type='Recognizer2D',
    backbone=dict(type='GuardTinyBackbone2D', width=8, in_channels=3),
    cls_head=dict(type='TSNHead', num_classes=60, in_channels=8, spatial_type='avg',
                  consensus=dict(type='AvgConsensus', dim=1), dropout_ratio=0.0,
                  average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], format_shape='NCHW'))


def _pipeline(test_mode):
    return [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=3,
             test_mode=test_mode),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(-1, 72)),
        dict(type='CenterCrop', crop_size=64),
        dict(type='FormatShape', input_format='NCHW'),
        dict(type='PackActionInputs'),
    ]


def _video_loader(pipeline, test_mode):
    return dict(_delete_=True, batch_size=2, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=not test_mode),
                dataset=dict(type='VideoDataset', ann_file='data/kinetics/list.txt',
                             data_prefix=dict(video='data/kinetics/videos'),
                             pipeline=pipeline, test_mode=test_mode))


train_pipeline = _pipeline(False)
val_pipeline = _pipeline(True)
test_pipeline = _pipeline(True)
train_dataloader = _video_loader(train_pipeline, False)
val_dataloader = _video_loader(val_pipeline, True)
test_dataloader = _video_loader(test_pipeline, True)
default_hooks = dict(checkpoint=dict(save_best='auto', rule=None))
