"""What the launch checks (``pipeline``, ``runner``, ``ddp``) share.

The synthetic NTU-60 data in a temporary folder with the config pointed at
it, the CPU settings that keep NTU-size passes to seconds, the config's
pipelines and samplers, and one-line error descriptions with a location.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..batch import pipeline_of, step_of  # noqa: F401  (shared with the launch checks)
from ..describe import short
from ..errors import one_line as error_line  # noqa: F401

LOADERS = {'train': 'train_dataloader', 'val': 'val_dataloader', 'test': 'test_dataloader'}
SAMPLERS = ('MMUniformSampleFrames', 'UniformSampleFrames', 'SampleFrames')
#: Views a multi-crop transform multiplies each clip into.
CROPS = {'ThreeCrop': 3, 'TenCrop': 10}


def synthetic_config(cfg: Any, root: Path, *, num_train: int, num_val: int,
                     seed: int = 0) -> tuple[Any, Any]:
    """A copy of ``cfg`` whose dataloaders read a synthetic NTU-60 set written under ``root``.

    Only the data locations change (``epam_guard.fixtures.dataset_overrides``).

    Returns:
        tuple: the config copy and the ``epam_guard.fixtures.SyntheticDataset``.
    """
    from epam_guard.fixtures import dataset_overrides, make_ntu60_dataset

    dataset = make_ntu60_dataset(Path(root) / 'data', num_train=num_train, num_val=num_val,
                                 seed=seed)
    synthetic = copy.deepcopy(cfg)
    synthetic.merge_from_dict(dataset_overrides(dataset))
    return synthetic, dataset


@contextlib.contextmanager
def cpu_math(device: torch.device) -> Iterator[None]:
    """One thread with denormals flushed to zero, while NTU-size passes run on the CPU.

    Freshly initialised EPAM layers drive many activations into denormal
    floats, which x86 CPUs compute 10-30x slower. Flushing them changes no
    shape and no decision of these checks. The flag is per thread and the
    intra-op pool's threads were started without it, so this thread runs the
    passes alone: measured on 2 cores, one flushed thread beats two unflushed
    ones by 5x. Thread count and flag are put back on exit (the flag to off,
    torch's default; it cannot be read back).
    """
    if device.type != 'cpu':
        yield
        return
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


@contextlib.contextmanager
def quiet_console(level: int = logging.ERROR) -> Iterator[None]:
    """Keep MMEngine's console below ``level`` (dataset notices, deprecations) for a while.

    Only the current ``MMLogger``'s stream handlers are raised; files and
    other loggers are untouched, and the levels are put back on exit.
    """
    from mmengine.logging import MMLogger

    handlers = [h for h in MMLogger.get_current_instance().handlers
                if type(h) is logging.StreamHandler]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, level))
    try:
        yield
    finally:
        for handler, old in zip(handlers, levels):
            handler.setLevel(old)


def expected_views(pipeline: list[dict]) -> int | None:
    """Clips per sample the pipeline should pack: ``num_clips`` times any multi-crop."""
    sampler = step_of(pipeline, SAMPLERS)
    if sampler is None:
        return None
    views = int(sampler.get('num_clips', 1))
    for step in pipeline:
        views *= CROPS.get(str(step.get('type')), 1)
    return views


def shape(value: Any) -> str:
    """``(2, 1, 3, 16, 224, 224) float32`` for a tensor, the type name otherwise."""
    if isinstance(value, torch.Tensor):
        return short(value)
    return type(value).__name__
