"""Fixtures for the configs MMAction2 ships (see :mod:`mmaction_configs`).

``mmaction_config`` is parametrised over the six ids; narrow it with
``@pytest.mark.parametrize('mmaction_config', ['tsn', 'tsm'], indirect=True)``.
``mmaction_settings`` turns one into the guard's :class:`GuardSettings`
(weights off, the tiny size, a batch of 2).
"""
from __future__ import annotations

from typing import Any

import pytest
from mmaction_configs import IDS, MMActionConfig
from mmaction_configs import mmaction_config as _config


@pytest.fixture(params=IDS)
def mmaction_config(request: pytest.FixtureRequest) -> MMActionConfig:
    """One of the six shipped configs, by id, with the cfg-options that turn weights off."""
    return _config(request.param)


@pytest.fixture
def mmaction_settings(mmaction_config: MMActionConfig) -> Any:
    """``GuardSettings`` for ``mmaction_config``: weights off, tiny, batch 2, CPU."""
    from epam_guard.model.context import GuardSettings

    return GuardSettings(config=mmaction_config.path,
                         cfg_options=dict(mmaction_config.cfg_options), batch_size=2)
