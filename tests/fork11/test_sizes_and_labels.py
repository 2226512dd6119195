"""Time-keeping tiny recipes, and which label API the guard uses for a fork."""
from __future__ import annotations

from dataclasses import replace

import pytest
from mmengine.config import Config

from epam_guard.contract.errors import ConfigError
from epam_guard.model.batch import BatchRecipe, shrink
from epam_guard.model.context import resolve_label_api

NTU = BatchRecipe(rgb_frames=16, pose_frames=48, crop=224, heatmap=56, heatmap_channels=17,
                  views=5, batch_size=4, num_classes=60, size='ntu')


def test_tiny_shrinks_time_and_space():
    tiny = shrink(NTU)
    assert (tiny.rgb_frames, tiny.pose_frames, tiny.crop, tiny.heatmap) == (4, 12, 64, 16)
    assert not tiny.keep_time


def test_time_keeping_tiny_shrinks_space_only_and_stays_so():
    timed = shrink(NTU, keep_time=True)
    assert (timed.rgb_frames, timed.pose_frames, timed.crop, timed.heatmap) == (16, 48, 64, 16)
    # A check that shrinks the context's recipe again (labels does) keeps the clip lengths.
    assert shrink(replace(timed, batch_size=8)) == replace(timed, batch_size=8)


def _config(**guard: str) -> Config:
    return Config(dict(model=dict(), **({'epam_guard': guard} if guard else {})))


def test_label_api_asked_for_then_the_guard_key_then_the_install():
    from mmaction.structures import ActionDataSample

    installed = 'gt_label' if hasattr(ActionDataSample, 'set_gt_label') else 'gt_labels'
    assert resolve_label_api('auto', _config()) == installed
    assert resolve_label_api(None, _config(label_api='gt_labels')) == 'gt_labels'
    assert resolve_label_api('gt_labels', _config(label_api='gt_label')) == 'gt_labels'


def test_label_api_the_install_cannot_make_is_refused():
    from mmaction.structures import ActionDataSample

    if hasattr(ActionDataSample, 'set_gt_label'):
        pytest.skip('MMAction2 1.2 makes gt_label samples')
    with pytest.raises(ConfigError, match="has no ActionDataSample.gt_label; use --label-api"):
        resolve_label_api('gt_label', _config())
