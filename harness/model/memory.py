"""Will one pass at the asked batch size fit in memory? Measured, scaled, said before any check.

The bytes one sample costs are measured, not guessed: one batch-1 eval pass
at the tiny size with a forward hook on every leaf module sums the outputs
the modules make (what a training pass keeps for its backward, roughly).
Convolutional activations grow with the clip volume, so the figure is scaled
to the recipe's frames and pixels. A batch whose estimate exceeds what the
device has free is refused with the limit, instead of a swap storm or an
out-of-memory kill in the middle of a check.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..contract.errors import SizeError
from .batch import BatchRecipe, config_clip_lengths, describe, make_batch, preprocess, shrink
from .passes import value_context

#: Share of the free memory a run may plan to use (the rest: the model, the allocator, the OS).
USABLE = 0.8


def _volume(recipe: BatchRecipe) -> int:
    """Input elements of one sample of one view, over every packed key (any kind)."""
    return sum(math.prod(shape) for shape in recipe.shapes(1).values())


def bytes_per_sample(model: nn.Module, recipe: BatchRecipe) -> int:
    """Bytes of module outputs one sample makes at ``recipe``'s size (measured at tiny, scaled)."""
    probe = replace(shrink(recipe), batch_size=1)
    total = 0

    def count(module: nn.Module, args: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            data = preprocess(model, make_batch(probe), False)
            model(**data, mode='tensor')
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return int(total * _volume(recipe) / _volume(probe))


def free_bytes(device: torch.device) -> int | None:
    """Memory the device has free now (CUDA: the driver's figure; CPU: the OS's available)."""
    if device.type == 'cuda':
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def check_batch_fits(ctx: Any) -> None:
    """Refuse a batch whose training pass cannot fit, naming the largest that can.

    The pass that holds the most is the training step: every module output of
    its ``N`` clips is kept for the backward, at the size the value checks run
    (:func:`~epam_guard.model.passes.value_context`). Inference passes keep
    none of that. The estimate runs one sample of one view, so it takes
    seconds whatever the batch size. A model that fails it at tiny clip
    lengths is estimated at its config's; one that cannot run it at all is
    not judged here: the checks will say what is wrong with it.
    """
    recipe, device = value_context(ctx).recipe, ctx.device
    free = free_bytes(device)
    if free is None:
        return
    try:
        per_clip = bytes_per_sample(ctx.model, recipe)
    except Exception:
        # A model that takes only its config's clip lengths is checked at those (the
        # clip-length probe, after this estimate, will say so): estimate that size.
        recipe = replace(config_clip_lengths(ctx), batch_size=recipe.batch_size)
        try:
            per_clip = bytes_per_sample(ctx.model, recipe)
        except Exception:  # the checks report the model's own failure, with evidence
            return
    clips = recipe.batch_size
    if per_clip == 0 or clips * per_clip <= USABLE * free:
        return
    limit = int(USABLE * free // per_clip)
    fix = (f'use --batch-size {limit} or less' if limit >= 1 else
           'not even one sample fits: use --size tiny')
    raise SizeError(
        f'--batch-size {recipe.batch_size} needs about {clips * per_clip / 2**30:.1f} GiB for '
        f'one training step ({per_clip / 2**20:.0f} MiB a sample at {_at(recipe)}, '
        f'measured), but {device.type} has '
        f'{free / 2**30:.1f} GiB free: {fix}')


def _at(recipe: BatchRecipe) -> str:
    """The size a sample is estimated at: ``16x224x224`` (the RGB clip) for the multimodal
    kind, as the message always said; the kind and its shape for the others."""
    if recipe.input_kind.packed:
        return f'{recipe.rgb_frames}x{recipe.crop}x{recipe.crop}'
    return describe(recipe)
