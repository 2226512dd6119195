"""Shared fixtures for the guard's own tests: contexts on the default config or a variant."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from epam_guard.context import GuardSettings, build_context

#: Small batches keep each variant's checks to about a second on 2 cores.
BATCH = 2


@pytest.fixture(scope='session')
def make_context() -> Callable[..., Any]:
    """``make_context(cfg_options=..., **settings)`` -> a fresh guard context."""
    import guard_variants  # noqa: F401  (registers the test-only variants)

    def make(cfg_options: dict[str, Any] | None = None, **settings: Any) -> Any:
        settings.setdefault('batch_size', BATCH)
        return build_context(GuardSettings(cfg_options=dict(cfg_options or {}), **settings))

    return make


@pytest.fixture(scope='session')
def default_context(make_context: Callable[..., Any]) -> Any:
    """One context on the default config, shared by the tests that only read it."""
    return make_context()
