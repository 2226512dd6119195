"""pytest plugin (``pytest11`` entry point ``epam_guard``): options, markers, fixtures.

Only hooks, options and fixtures live here; torch and mmaction are imported
inside fixture bodies so ``pytest --help`` stays fast. The fixtures build one
guard context per (device, size) for the session and run the checks once.

Options: ``--epam-config``, ``--epam-device``, ``--epam-size`` and the other
shared options with the ``--epam-`` prefix (see :mod:`epam_guard.options`).
Tests marked ``gpu`` run on CUDA and skip with a reason where none is visible.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest

from .options import add_options

PREFIX = 'epam-'


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup('epam-guard', 'EPAM recognizer contract checks')
    group.addoption('--epam-config', dest='epam_config', default=None,
                    help='MMEngine config to check (default: the packaged '
                         'configs/epam_ntu60.py)')
    add_options(group.addoption, PREFIX)


def pytest_configure(config: pytest.Config) -> None:
    for marker in ('gpu: needs a visible CUDA device; skipped with a reason elsewhere',
                   'slow: NTU-size shapes or a real Runner; slower on CPU',
                   'ddp: spawns two DistributedDataParallel ranks'):
        config.addinivalue_line('markers', marker)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker('gpu') is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip('no CUDA device is visible (torch.cuda.is_available() is False)')


SNAPSHOT_HINT = (
    'The stored structure under snapshots/<test module>/ is missing, stale or unreadable; '
    'nothing was overwritten. If the interface change is intended, run '
    '`pytest --snapshot-update` and review the JSON diff; otherwise the model broke it.')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == 'call' and report.failed and \
            'epam_snapshot' in getattr(item, 'fixturenames', ()):
        report.sections.append(('epam-guard snapshots', SNAPSHOT_HINT))


@pytest.fixture(scope='session')
def epam_settings(pytestconfig: pytest.Config) -> Any:
    """The guard settings from the ``--epam-*`` options."""
    from .context import GuardSettings

    return GuardSettings.from_namespace(pytestconfig.option, prefix='epam_')


@pytest.fixture(scope='session')
def epam_context_factory(epam_settings: Any) -> Callable[..., Any]:
    """``factory(device=None, size=None, **overrides)`` -> a cached guard context."""
    from dataclasses import replace

    from .context import build_context

    cache: dict[tuple, Any] = {}

    def factory(**overrides: Any) -> Any:
        overrides = {k: v for k, v in overrides.items() if v is not None}
        key = tuple(sorted((k, repr(v)) for k, v in overrides.items()))
        if key not in cache:
            cache[key] = build_context(replace(epam_settings, **overrides))
        return cache[key]

    return factory


@pytest.fixture
def epam_device(request: pytest.FixtureRequest, epam_settings: Any) -> str:
    """``cuda`` for tests marked ``gpu``, otherwise the ``--epam-device`` option."""
    return 'cuda' if request.node.get_closest_marker('gpu') else epam_settings.device


@pytest.fixture
def epam_context(epam_context_factory: Callable[..., Any], epam_device: str) -> Any:
    """The guard context (config, built model, batch recipe) for this test's device."""
    return epam_context_factory(device=epam_device)


@pytest.fixture
def epam_batch(epam_context: Any) -> dict[str, Any]:
    """A synthetic collated batch for the context's config (one view per sample)."""
    from .batch import make_batch

    return make_batch(epam_context.recipe)


@pytest.fixture(scope='session')
def _epam_results_cache() -> dict[int, dict[str, Any]]:
    return {}


@pytest.fixture
def epam_results(epam_context: Any, _epam_results_cache: dict[int, dict[str, Any]]
                 ) -> dict[str, Any]:
    """name -> CheckResult of the checks (``--epam-only``/``--epam-skip``), run once
    per context and session."""
    from .engine import run_checks, select_checks

    key = id(epam_context)
    if key not in _epam_results_cache:
        settings = epam_context.settings
        names = select_checks(settings.only, settings.skip)
        results = run_checks(epam_context, names)
        _epam_results_cache[key] = {result.name: result for result in results}
    return _epam_results_cache[key]


@pytest.fixture
def epam_snapshot(snapshot: Any, pytestconfig: pytest.Config) -> Any:
    """syrupy's ``snapshot`` storing JSON under ``<rootdir>/snapshots/<test module>/``."""
    from .snapshot import extension_for

    return snapshot.use_extension(extension_for(pytestconfig.rootpath / 'snapshots'))
