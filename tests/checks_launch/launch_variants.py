"""Deliberately broken variants for the launch checks: a model under a test-only name,
and helpers that edit the config's pipelines.

Importable by the ``ddp`` check's ranks too: they are separate processes, so
a test passes this folder as an import path and this module in the config's
``custom_imports``. Importing it registers the variant (once).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmaction.registry import MODELS
from torch import nn

from epam.head import EPAMHierarchicalHead

MODULE = 'launch_variants'
HERE = Path(__file__).resolve().parent
#: Small synthetic batches: the ddp ranks' train steps stay well under a second.
BATCH = 2


def _register(cls: type) -> type:
    if cls.__name__ not in MODELS.module_dict:
        MODELS.register_module(module=cls)
    return cls


@_register
class LaunchTestUnusedLayerHead(EPAMHierarchicalHead):
    """The reference head with one extra layer that no loss reaches.

    Under DistributedDataParallel with ``find_unused_parameters=False`` the
    second training step stops: ``unused.weight``/``unused.bias`` never get a
    gradient.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.unused = nn.Linear(4, 4)


def unused_head_overrides() -> dict:
    """Config overrides that select the variant, in this process and in the ranks."""
    return {'model.cls_head.type': LaunchTestUnusedLayerHead.__name__,
            'custom_imports': dict(imports=['epam', MODULE], allow_failed_imports=False)}


def pipelines(cfg: Any) -> list[list[Any]]:
    """The train, val and test pipelines of ``cfg`` (editable in place)."""
    return [cfg[f'{split}_dataloader'].dataset.pipeline for split in ('train', 'val', 'test')]


def steps(cfg: Any, kind: str) -> list[Any]:
    """Every transform of type ``kind`` in the three pipelines."""
    return [step for pipeline in pipelines(cfg) for step in pipeline if step.type == kind]


def shrink(cfg: Any, side: int = 64, rgb_frames: int = 4) -> None:
    """Make the pipelines' clips small (ratios kept) so a real Runner trains in a second."""
    for sampler in steps(cfg, 'MMUniformSampleFrames'):
        sampler.clip_len = dict(RGB=rgb_frames, Pose=3 * rgb_frames)
    for resize in steps(cfg, 'Resize'):
        resize.scale = (side, side)
    for crop in steps(cfg, 'CenterCrop'):
        crop.crop_size = side
