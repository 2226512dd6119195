"""The size probe of a one-tensor kind: the memory estimate measures and scales it, the
refusal and the clip-length probe name the kind (STGCN: the quickest model to build)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from mmaction_configs import mmaction_config

from epam_guard.contract.errors import SizeError
from epam_guard.model import memory
from epam_guard.model.context import GuardSettings, build_context, settle_sizes


def settings() -> GuardSettings:
    config = mmaction_config('stgcn')
    return GuardSettings(config=config.path, cfg_options=dict(config.cfg_options), batch_size=2)


@pytest.fixture(scope='module')
def ctx() -> Any:
    return build_context(settings(), fit=False)


@pytest.mark.slow
def test_the_clip_length_probe_runs_a_gcn_at_tiny() -> None:
    fitted = build_context(settings())
    assert fitted.size_note is None  # STGCN takes 4 frames: nothing to fall back from
    assert fitted.recipe.kind == 'GCN' and fitted.recipe.pose_frames == 4
    assert {'loss', 'tensor'} <= {key[0] for key in fitted.passes}  # the probe's passes ran


def test_the_estimate_scales_with_the_skeleton_volume(ctx: Any) -> None:
    tiny = memory.bytes_per_sample(ctx.model, ctx.recipe)
    assert tiny > 0
    longer = replace(ctx.recipe, pose_frames=ctx.recipe.pose_frames * 4)
    assert memory.bytes_per_sample(ctx.model, longer) == pytest.approx(4 * tiny, rel=0.01)


def test_a_batch_too_large_is_refused_naming_the_kind(ctx: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    per_sample = memory.bytes_per_sample(ctx.model, ctx.recipe)
    monkeypatch.setattr(memory, 'free_bytes', lambda device: int(3 * per_sample / 0.8) + 1)
    settle_sizes(replace(ctx, recipe=replace(ctx.recipe, batch_size=3)), fit=False)
    with pytest.raises(SizeError, match=r'--batch-size 4 needs .* a sample at RecognizerGCN GCN '
                                        r'2x4x17x3, measured.*use --batch-size 3 or less'):
        settle_sizes(replace(ctx, recipe=replace(ctx.recipe, batch_size=4)), fit=False)
