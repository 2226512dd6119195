"""Shared fixtures for the guard's own tests: contexts on the default config or a variant."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from epam_guard.model.context import GuardSettings, build_context

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


@pytest.fixture(scope='session')
def default_result(default_context: Any) -> Callable[[str], Any]:
    """``default_result(name)`` -> that check's result on the default context, run once per
    session (the snapshot tests and the pass tests read the same run)."""
    from epam_guard.checks import CHECKS
    from epam_guard.run.engine import run_check

    results: dict[str, Any] = {}

    def result(name: str) -> Any:
        if name not in results:
            results[name] = run_check(default_context, name, CHECKS[name])
        return results[name]

    return result
