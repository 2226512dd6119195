"""Deliberately broken variants for the launch checks: a model under a test-only name,
and helpers that edit the config's pipelines.

Importable by the ``ddp`` check's ranks too: they are separate processes, so
a test passes this folder as an import path and this module in the config's
``custom_imports``. Importing it registers the variant (once).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmaction.registry import HOOKS, MODELS
from mmengine.hooks import Hook
from torch import nn

from epam.backbone import EPAMBackbone
from epam.head import EPAMHierarchicalHead

MODULE = 'launch_variants'
HERE = Path(__file__).resolve().parent
#: Small synthetic batches: the ddp ranks' train steps stay well under a second.
BATCH = 2
#: Seconds a test waits for the processes it started to appear: a net for one that never
#: does, not a measure of start-up (a loaded machine takes what it takes; the wait also ends
#: when the process it watches exits).
START_WAIT = 600


def _register(cls: type) -> type:
    registry = HOOKS if issubclass(cls, Hook) else MODELS
    if cls.__name__ not in registry.module_dict:
        registry.register_module(module=cls)
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


@_register
class LaunchTestTrainRefusingBackbone(EPAMBackbone):
    """The reference backbone, except that its forward raises in training mode."""

    def forward(self, imgs, heatmap_imgs, gt=None, gt_coarse=None):
        if self.training:
            raise RuntimeError('this backbone refuses to train')  # REFUSAL
        return super().forward(imgs, heatmap_imgs, gt, gt_coarse)


#: The line of :class:`LaunchTestTrainRefusingBackbone` that raises.
REFUSAL_LINE = next(number for number, line in enumerate(
    Path(__file__).read_text().splitlines(), 1) if line.endswith('# REFUSAL'))


@_register
class LaunchTestNotesHook(Hook):
    """A hook that writes a note to ``notes`` (a path under a key MMEngine does not know)."""

    def __init__(self, notes: str) -> None:
        self.notes = notes

    def before_train(self, runner: Any) -> None:
        Path(self.notes).write_text('the run was here\n')


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
