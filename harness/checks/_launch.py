"""What the launch checks (``pipeline``, ``runner``, ``ddp``) share.

Synthetic data in a temporary folder, in the format of the config's own
datasets, with the config pointed at it; the key points, views and samplers
the config implies; one-line error descriptions that point at the user's
code. (The CPU settings that keep NTU-size passes to
seconds are :func:`epam_guard.probe.isolation.cpu_math`.)
"""
from __future__ import annotations

import copy
import traceback
from pathlib import Path
from typing import Any

from ..contract.errors import one_line
from ..model.batch import DEFAULT_KEYPOINTS, step_of

LOADERS = {'train': 'train_dataloader', 'val': 'val_dataloader', 'test': 'test_dataloader'}
SAMPLERS = ('MMUniformSampleFrames', 'UniformSampleFrames', 'SampleFrames')
#: Views a multi-crop transform multiplies each clip into.
CROPS = {'ThreeCrop': 3, 'TenCrop': 10}


#: Transforms whose ``dataset`` names a skeleton layout.
LAYOUT_STEPS = ('GenSkeFeat', 'JointToBone', 'ToMotion', 'MergeSkeFeat')


def _pipelines(cfg: Any) -> list[list[dict]]:
    from ..fixtures.datasets import find_datasets

    return [data.pipeline for data in find_datasets(cfg)]


def keypoints_of(cfg: Any) -> tuple[int, str]:
    """Joints per person the config's model and pipelines imply, and where that came from.

    In order: a named skeleton layout (``backbone.graph_cfg.layout``, a
    ``GenSkeFeat``'s ``dataset``); the heat maps per key point the backbone
    takes where ``GeneratePoseTarget`` makes one per key point (its declared
    pose channels, or a single-input backbone's ``in_channels``); the highest
    key-point index a transform names, plus one; else COCO's 17 (assumed).
    """
    from ..model.batch import declared_channels
    from ..model.kinds import graph_joints

    backbone = (cfg.get('model') or {}).get('backbone') or {}
    pipelines = _pipelines(cfg)
    layout = (backbone.get('graph_cfg') or {}).get('layout') if isinstance(
        backbone.get('graph_cfg'), dict) else None
    where = 'backbone.graph_cfg.layout'
    for pipeline in pipelines:
        for step in pipeline:
            if layout is None and step.get('type') in LAYOUT_STEPS and step.get('dataset'):
                layout, where = step['dataset'], f'{step["type"]}.dataset'
    if layout is not None:
        try:  # MMAction2's own Graph knows the named layouts and reads a custom one
            joints = graph_joints(dict(layout=layout))
        except Exception:  # a layout Graph rejects: the model build reports it
            joints = None
        if joints is not None:
            return joints, f'{where} {layout!r}' if isinstance(layout, str) else where
    targets = [step for pipeline in pipelines for step in pipeline
               if step.get('type') == 'GeneratePoseTarget']
    if targets and targets[0].get('with_kp', True) and not targets[0].get('with_limb', False):
        declared, key = declared_channels(backbone, 'pose')
        if declared is None and isinstance(backbone.get('in_channels'), int) \
                and (cfg.model.get('data_preprocessor') or {}).get('type') != \
                'MultiModalDataPreprocessor':
            declared, key = int(backbone['in_channels']), 'backbone.in_channels'
        if declared is not None:
            return declared, f'{key} (one heat map per key point)'
    named = [index for pipeline in pipelines for step in pipeline
             for name in ('left_kp', 'right_kp')
             for index in (step.get(name) or ())]
    if named and max(named) + 1 > DEFAULT_KEYPOINTS:
        return max(named) + 1, 'the highest key-point index the pipelines name'
    return DEFAULT_KEYPOINTS, "assumed (COCO's 17: the config does not say)"


def sample_shape(cfg: Any, num_classes: int, seed: int = 0) -> Any:
    """What the synthetic samples of ``cfg`` look like (``fixtures.datasets.SampleShape``)."""
    from ..fixtures.datasets import SampleShape

    coords = 3 if any(step.get('type') == 'PreNormalize3D'
                      for pipeline in _pipelines(cfg) for step in pipeline) else 2
    return SampleShape(num_classes=num_classes, num_keypoints=keypoints_of(cfg)[0],
                       coords=coords, seed=seed)


def num_classes_of(cfg: Any) -> int:
    """The head's class count (``model.cls_head.num_classes``)."""
    head = (cfg.get('model') or {}).get('cls_head') or {}
    return int(head.get('num_classes') or 1)


def synthetic_config(cfg: Any, root: Path, *, num_train: int, num_val: int,
                     seed: int = 0, num_classes: int | None = None) -> tuple[Any, Any]:
    """A copy of ``cfg`` whose dataloaders read synthetic data written under ``root``.

    The data follows each dataloader's dataset type
    (:mod:`epam_guard.fixtures.datasets`), the head's classes (``num_classes``,
    else ``model.cls_head.num_classes``) and the key points the config
    implies (:func:`keypoints_of`). Only the data locations change.

    Returns:
        tuple: the config copy and the ``epam_guard.fixtures.datasets.SyntheticData``.

    Raises:
        epam_guard.fixtures.datasets.SyntheticDataError: data the guard cannot make,
            or a video decoder that is not installed (one line).
    """
    from ..fixtures.datasets import make_datasets

    shape = sample_shape(cfg, num_classes or num_classes_of(cfg), seed)
    dataset = make_datasets(cfg, Path(root), shape, num_train=num_train,
                            num_val=num_val)
    synthetic = copy.deepcopy(cfg)
    synthetic.merge_from_dict(dataset.overrides)
    return synthetic, dataset


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, then what it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def located(exc: BaseException) -> str:
    """``Type: first line (file.py:LINE)``, the location being the innermost frame of user code.

    User code is anything but the standard library, the guard and the
    frameworks (torch, MMEngine, MMCV, MMAction2, NumPy). When a framework
    re-raises an error in its own words (``raise X(...) from exc``, or while
    handling it), the message stays the outer one and the location comes from
    the deepest exception in the chain that passed through user code (the
    cause, where the user's code went wrong); without any, from the innermost
    frame.
    """
    from ..probe.frames import is_library_frame

    for link in reversed(_chain(exc)):
        frames = traceback.extract_tb(link.__traceback__)
        user = [frame for frame in frames if not is_library_frame(frame.filename)]
        if user:
            return f'{one_line(exc, location=False)} ({Path(user[-1].filename).name}:' \
                   f'{user[-1].lineno})'
    return one_line(exc)


def unrepeated(cfg: Any) -> list[str]:
    """Dataset wrappers that repeat their data (``RepeatDataset(times=N)``) set to one pass, so
    that a one-epoch run is one pass over the synthetic samples; returns what was changed."""
    changed = []
    for loader in LOADERS.values():
        dataset = (cfg.get(loader) or {}).get('dataset')
        path = f'{loader}.dataset'
        while isinstance(dataset, dict) and isinstance(dataset.get('dataset'), dict):
            if isinstance(dataset.get('times'), int) and dataset['times'] != 1:
                changed.append(f'{path}.times={dataset["times"]}')
                dataset['times'] = 1
            dataset, path = dataset['dataset'], f'{path}.dataset'
    return changed


def in_process_loaders(cfg: Any) -> None:
    """Every dataloader of ``cfg`` loads in the process that runs it (no worker processes),
    so a check's run stays one process per rank that the guard can stop."""
    for loader in LOADERS.values():
        if cfg.get(loader):
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False


def expected_views(pipeline: list[dict]) -> int | None:
    """Clips per sample the pipeline should pack: ``num_clips`` times any multi-crop."""
    sampler = step_of(pipeline, SAMPLERS)
    if sampler is None:
        return None
    views = int(sampler.get('num_clips', 1))
    for step in pipeline:
        views *= CROPS.get(str(step.get('type')), 1)
        # GeneratePoseTarget(double=True) adds the flipped clip of each clip as a view.
        views *= 2 if step.get('type') == 'GeneratePoseTarget' and step.get('double') else 1
    return views


def loader_pipeline(cfg: Any, split: str) -> list[dict]:
    """The transforms of the dataset ``{split}_dataloader`` reads (inside any wrapper)."""
    from ..fixtures.datasets import find_datasets

    return next((data.pipeline for data in find_datasets(cfg)
                 if data.loader == LOADERS[split]), [])
