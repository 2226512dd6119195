"""The shipped configs' fixture: every id resolves, and weights are off after the overrides."""
from __future__ import annotations

import os

import pytest
from mmaction_configs import IDS, MMActionConfig


def test_ids_are_the_six_targets() -> None:
    assert IDS == ('rgbpose', 'posec3d', 'stgcn', 'tsn', 'tsm', 'slowonly')


def test_weights_are_off(mmaction_config: MMActionConfig) -> None:
    from mmengine.config import Config

    cfg = Config.fromfile(os.fspath(mmaction_config.path))
    cfg.merge_from_dict(mmaction_config.cfg_options)
    pretrained = (cfg.model.get('backbone') or {}).get('pretrained')
    assert cfg.get('load_from') is None
    assert not (isinstance(pretrained, str) and '://' in pretrained), pretrained
    assert not cfg.model.backbone.get('pretrained2d', False)


def test_unknown_id_is_refused() -> None:
    from mmaction_configs import mmaction_config

    with pytest.raises(KeyError, match='choose from rgbpose'):
        mmaction_config('nope')
