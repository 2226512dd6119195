"""A hostile backbone for the guard's reliability tests: it misbehaves in training passes.

Selected with ``--import-path tests/hostile`` and
``--cfg-options custom_imports.imports=[epam,hostile_models]
model.backbone.type=GuardHostileBackbone model.backbone.hostile=MODE``, where
MODE is ``raise``, ``spin``, ``sleep``, ``sys_exit``, ``os_exit`` or
``segfault``. Inference passes behave, so a check that only runs the model in
eval mode (``summary``) still passes after the hostile one.
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
from typing import Any

from mmaction.registry import MODELS

from epam.backbone import EPAMBackbone

MODES = ('raise', 'spin', 'sleep', 'sys_exit', 'os_exit', 'segfault')


def misbehave(mode: str) -> None:
    """Do what ``mode`` says, the way broken model code does it."""
    if mode == 'raise':
        raise RuntimeError('hostile backbone: planted failure')
    if mode == 'spin':
        while True:
            pass
    if mode == 'sleep':
        time.sleep(3600)
    if mode == 'sys_exit':
        sys.exit(3)
    if mode == 'os_exit':
        os._exit(0)
    if mode == 'segfault':
        ctypes.string_at(0)


@MODELS.register_module()
class GuardHostileBackbone(EPAMBackbone):
    """The reference backbone, hostile in training mode as ``hostile`` says."""

    def __init__(self, *args: Any, hostile: str = 'raise', **kwargs: Any) -> None:
        if hostile not in MODES:
            raise ValueError(f'hostile must be one of {MODES}, but got {hostile!r}')
        super().__init__(*args, **kwargs)
        self.hostile = hostile

    def forward(self, imgs, heatmap_imgs, gt=None, gt_coarse=None):
        if self.training:
            misbehave(self.hostile)
        return super().forward(imgs, heatmap_imgs, gt, gt_coarse)
