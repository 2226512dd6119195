"""Broken models for the distributed tests: one rank misbehaves, or DDP cannot work.

Imported by the ranks through ``custom_imports`` (with this folder as an
import path): ``--cfg-options custom_imports.imports=[epam,rank_faults]
model.backbone.type=RankFaultBackbone model.backbone.fault=kill`` makes
rank 1 (``model.backbone.fault_rank``) kill itself with SIGKILL in its first
training step under DDP; ``raise``, ``sleep``, ``os_exit`` and ``segfault`` are the
other faults (``model.backbone.fault_when=check``: in a forward of one of the guard's
contract checks instead). ``RecreatedParameterHead`` makes a new ``nn.Parameter`` in
every training forward.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from types import FrameType

import torch
from mmaction.registry import MODELS
from torch import nn

from epam.backbone import EPAMBackbone
from epam.head import EPAMHierarchicalHead

MODULE = 'rank_faults'
FAULTS = ('raise', 'sleep', 'kill', 'os_exit', 'segfault')


def _register(cls: type) -> type:
    if cls.__name__ not in MODELS.module_dict:
        MODELS.register_module(module=cls)
    return cls


def misbehave(fault: str) -> None:
    """Fail the way ``fault`` says: an exception, a hang, or a death without one."""
    if fault == 'raise':
        raise RuntimeError('planted failure on this rank')
    if fault == 'sleep':
        time.sleep(3600)
    if fault == 'kill':  # what the kernel's OOM killer does
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == 'os_exit':
        os._exit(0)
    if fault == 'segfault':
        ctypes.string_at(0)


@_register
class RankFaultBackbone(EPAMBackbone):
    """The reference backbone; on rank ``fault_rank`` its training forward does ``fault``."""

    def __init__(self, *args, fault: str = 'raise', fault_rank: int = 1, fault_when: str = 'ddp',
                 fault_mark: str | None = None, **kwargs) -> None:
        if fault not in FAULTS:
            raise ValueError(f'fault must be one of {FAULTS}, but got {fault!r}')
        super().__init__(*args, **kwargs)
        self.fault, self.fault_rank = fault, fault_rank
        self.fault_when, self.fault_mark = fault_when, fault_mark

    def forward(self, imgs, heatmap_imgs, gt=None, gt_coarse=None):
        if int(os.environ.get('RANK', -1)) == self.fault_rank and (
                under_ddp() if self.fault_when == 'ddp' else in_a_check()):
            if self.fault_mark:  # a test waits for this file to know the fault has begun
                with open(self.fault_mark, 'w') as mark:
                    mark.write(str(os.getpid()))
            misbehave(self.fault)
        return super().forward(imgs, heatmap_imgs, gt, gt_coarse)


def called_from(function: str, *path: str) -> bool:
    """Whether a caller's frame is ``function`` in a file ending with ``path``."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == function and code.co_filename.endswith(os.path.join(*path)):
            return True
        frame = frame.f_back
    return False


def in_a_check() -> bool:
    """Whether this call comes from one of the guard's contract checks (its check runner)."""
    return called_from('run_check', 'epam_guard', 'run', 'engine.py') or called_from(
        'run_check', 'harness', 'run', 'engine.py')


def under_ddp() -> bool:
    """Whether this call comes from MMEngine's DDP ``train_step`` (a Runner's training step).

    The guard's own passes before it (contract checks, the size fit) must not trip the fault.
    """
    return called_from('train_step', 'wrappers', 'distributed.py')


@_register
class RecreatedParameterHead(EPAMHierarchicalHead):
    """The reference head with a scale that its training forward makes anew each time."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        if self.training:
            self.scale = nn.Parameter(torch.ones(1, device=x[0].device))
        return {key: score * self.scale for key, score in super().forward(x).items()}


def overrides(**model: object) -> dict:
    """``--cfg-options`` (as a dict) that import this module in every rank and set ``model``."""
    return {'custom_imports': dict(imports=['epam', MODULE], allow_failed_imports=False),
            **{f'model.{key}': value for key, value in model.items()}}


def fault(kind: str, rank: int = 1, **more: str) -> dict:
    """Overrides that make rank ``rank`` do ``kind`` in its first training forward under DDP
    (``when='check'``: in a contract check's; ``mark=PATH``: write PATH as it begins)."""
    return overrides(**{'backbone.type': RankFaultBackbone.__name__, 'backbone.fault': kind,
                        'backbone.fault_rank': rank,
                        **{f'backbone.fault_{key}': value for key, value in more.items()}})
