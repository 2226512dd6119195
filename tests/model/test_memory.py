"""The batch-size limit: measured per clip, scaled to the size, refused with the limit."""
from __future__ import annotations

from dataclasses import replace

import pytest

from epam_guard.contract.errors import SizeError
from epam_guard.model import memory
from epam_guard.model.context import GuardSettings, build_context


@pytest.fixture(scope='module')
def ctx():
    return build_context(GuardSettings(batch_size=2))


def test_a_clip_costs_more_at_the_real_size_in_proportion_to_its_volume(ctx):
    tiny = memory.bytes_per_sample(ctx.model, ctx.recipe)
    assert tiny > 0
    bigger = replace(ctx.recipe, crop=ctx.recipe.crop * 2, heatmap=ctx.recipe.heatmap * 2)
    assert memory.bytes_per_sample(ctx.model, bigger) == pytest.approx(4 * tiny, rel=0.01)


def test_a_batch_that_fits_passes_and_one_that_does_not_names_the_limit(ctx, monkeypatch):
    per_clip = memory.bytes_per_sample(ctx.model, ctx.recipe)
    monkeypatch.setattr(memory, 'free_bytes', lambda device: int(10 * per_clip / 0.8) + 1)
    memory.check_batch_fits(replace(ctx, recipe=replace(ctx.recipe, batch_size=10)))
    with pytest.raises(SizeError, match=r'--batch-size 11 needs about .* use --batch-size 10 '
                                        r'or less'):
        memory.check_batch_fits(replace(ctx, recipe=replace(ctx.recipe, batch_size=11)))


def test_the_probe_leaves_the_model_as_it_was(ctx):
    ctx.model.train()
    memory.bytes_per_sample(ctx.model, ctx.recipe)
    assert ctx.model.training
    assert not any(module._forward_hooks for module in ctx.model.modules())


def test_a_batch_too_large_is_refused_before_any_pass_at_that_size(ctx, monkeypatch):
    """The estimate runs one sample of one view: --batch-size 5000 is refused in seconds."""
    from epam_guard.model.context import settle_sizes

    per_clip = memory.bytes_per_sample(ctx.model, ctx.recipe)
    monkeypatch.setattr(memory, 'free_bytes', lambda device: 100 * per_clip)
    seen: list[int] = []
    hook = ctx.model.backbone.register_forward_pre_hook(
        lambda module, args: seen.append(int(args[0].shape[0])))
    big = replace(ctx, recipe=replace(ctx.recipe, batch_size=5000), passes={})
    try:
        with pytest.raises(SizeError, match='--batch-size 5000 needs about .* use --batch-size '
                                            '80 or less'):
            settle_sizes(big)
    finally:
        hook.remove()
    assert seen == [1]  # one clip, once: nothing ran at the asked size
