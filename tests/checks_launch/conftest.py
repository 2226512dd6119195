"""Shared by the tests of the launch checks (``pipeline``, ``runner``, ``ddp``).

One guard context on the default config for the whole session, and cheap
variants of it: a copy whose config a test may edit (the model is shared,
so only checks that stop before the model may use such a copy).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

import pytest
from launch_variants import BATCH

from epam_guard.model.context import GuardSettings, build_context


@pytest.fixture(scope='session')
def launch_context() -> Any:
    """The guard context on the default config (tiny recipe, CPU)."""
    return build_context(GuardSettings(batch_size=BATCH))


@pytest.fixture
def edited(launch_context: Any) -> Callable[[Callable[[Any], None]], Any]:
    """``edited(edit)`` -> a context whose config copy ``edit(cfg)`` has changed.

    Built after the pre-flight (``recipe_from_config``), like a pipeline that
    drifts from what the recipe read; shares the session's model.
    """
    def make(edit: Callable[[Any], None]) -> Any:
        cfg = copy.deepcopy(launch_context.cfg)
        edit(cfg)
        return dataclasses.replace(launch_context, cfg=cfg, passes={})

    return make
