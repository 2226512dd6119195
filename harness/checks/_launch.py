"""What the launch checks (``pipeline``, ``runner``, ``ddp``) share.

The synthetic NTU-60 data in a temporary folder with the config pointed at
it, the config's samplers and views, and one-line error descriptions that
point at the user's code. (The CPU settings that keep NTU-size passes to
seconds are :func:`epam_guard.isolation.cpu_math`.)
"""
from __future__ import annotations

import copy
import traceback
from pathlib import Path
from typing import Any

from ..batch import step_of
from ..errors import one_line

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
    from ..supervisor import is_library

    for link in reversed(_chain(exc)):
        frames = traceback.extract_tb(link.__traceback__)
        user = [frame for frame in frames if not is_library(frame.filename)]
        if user:
            return f'{one_line(exc, location=False)} ({Path(user[-1].filename).name}:' \
                   f'{user[-1].lineno})'
    return one_line(exc)


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
    return views
