"""pytest plugin (``pytest11`` entry point ``epam_guard``): options and ``epam_*`` fixtures.

Only hooks, options and fixtures live here; torch and mmaction are imported
inside fixture bodies so ``pytest --help`` stays fast. The fixtures build one
guard context per (device, size) for the session and run the checks once.

The plugin is loaded into every pytest session of an environment where the
package is installed, so it stays out of the way of projects that do not use
it: it registers no markers, changes no process state, and acts only on tests
that request its ``epam_*`` fixtures.

Configuration: ``epam_config = path/to/config.py`` in the ini file (relative to
it), overridden by ``--epam-config`` (relative to the current folder); a
config that does not exist is one usage error for the session. The other
shared options take the ``--epam-`` prefix (see :mod:`epam_guard.options`);
each takes one value (repeat ``--epam-cfg-options`` for several pairs), so no
option swallows the test paths after it.
"""
from __future__ import annotations

import argparse
import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from .options import OPTIONS, add_options

PREFIX = 'epam-'
INI_CONFIG = 'epam_config'
_CONFIG_KEY = pytest.StashKey['Path | None']()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup('epam-guard', 'EPAM recognizer contract checks')
    group.addoption('--epam-config', dest='epam_config', default=None,
                    help=f'MMEngine config the epam_* fixtures check; overrides the '
                         f'{INI_CONFIG} ini value (default: the packaged configs/epam_ntu60.py)')
    parser.addini(INI_CONFIG, 'MMEngine config the epam_* fixtures check, relative to the '
                              'ini file (--epam-config overrides it)', default='')
    add_options(group.addoption, PREFIX)


def config_path(config: pytest.Config) -> tuple[Path | None, str]:
    """The config the session checks and where it was named (``--epam-config`` first,
    then the ini value; ``(None, '')`` when neither names one)."""
    given = config.getoption('epam_config', default=None)
    if given:
        return Path(given).expanduser().resolve(), '--epam-config'
    value = str(config.getini(INI_CONFIG) or '').strip()
    if not value:
        return None, ''
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return (base / Path(value).expanduser()).resolve(), f'{INI_CONFIG} ({config.inipath})'


def _unusable(path: Path) -> str | None:
    """Why ``path`` cannot be a config, judged without importing anything heavy."""
    if not path.exists():
        return 'does not exist'
    if not path.is_file():
        return 'is not a file'
    try:
        source = path.read_bytes()
    except OSError as exc:
        return f'cannot be read ({exc.strerror})'
    if path.suffix == '.py':
        try:
            compile(source, str(path), 'exec')
        except SyntaxError as exc:
            return f'is not valid Python (line {exc.lineno}: {exc.msg})'
        except ValueError as exc:  # e.g. null bytes
            return f'is not valid Python ({exc})'
    return None


def _value_flags() -> set[str]:
    """The plugin's options that take a value."""
    return {'--epam-config'} | {option.flag(PREFIX) for option in OPTIONS
                                if option.kwargs.get('action') != 'store_true'}


def pytest_configure(config: pytest.Config) -> None:
    from .plugin_args import moved_rootdir

    moved = moved_rootdir(config, _value_flags())
    if moved is not None:
        raise pytest.UsageError(moved)
    path, origin = config_path(config)
    # `pytest --help` shows the help whatever the configuration names.
    if path is not None and not config.getoption('help', default=False):
        reason = _unusable(path)
        if reason is not None:
            raise pytest.UsageError(f'{origin}: the config {path} {reason}')
    config.stash[_CONFIG_KEY] = path


SNAPSHOT_HINT = (
    'The stored structure under snapshots/<test file path>/ is missing, stale or unreadable; '
    'nothing was overwritten. If the interface change is intended, run '
    '`pytest --snapshot-update` and review the JSON diff; otherwise the model broke it.')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == 'call' and report.failed and \
            'epam_snapshot' in getattr(item, 'fixturenames', ()):
        report.sections.append(('epam-guard snapshots', SNAPSHOT_HINT))


#: What torch says when MMCV/MMAction2 modules script functions at import (dozens per session).
FRAMEWORK_DEPRECATIONS = r'`torch\.jit\.(script|interface)` is deprecated'


@contextlib.contextmanager
def _framework_quiet() -> Iterator[None]:
    """Silence torch.jit's deprecation of the frameworks' own code, inside the plugin's
    fixtures only: the user's tests and their own imports keep every warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=FRAMEWORK_DEPRECATIONS,
                                category=DeprecationWarning)
        yield


def _flat(values: Any) -> list[str]:
    """Option values as one list, whether the option appends single values or lists."""
    flat: list[str] = []
    for value in values or []:
        flat.extend(_flat(value) if isinstance(value, (list, tuple)) else [value])
    return flat


@pytest.fixture(scope='session')
def epam_settings(pytestconfig: pytest.Config) -> Any:
    """The guard settings from the ``--epam-*`` options and the ``epam_config`` ini value."""
    from .contract.errors import GuardError
    from .model.context import GuardSettings

    options = argparse.Namespace(**vars(pytestconfig.option))
    options.epam_cfg_options = _flat(getattr(options, 'epam_cfg_options', None))
    path = pytestconfig.stash.get(_CONFIG_KEY, None)
    options.epam_config = str(path) if path is not None else None
    try:
        return GuardSettings.from_namespace(options, prefix='epam_')
    except GuardError as exc:  # one line for the session, not a traceback per test
        pytest.exit(f'epam-guard: {exc}', returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope='session')
def epam_context_factory(epam_settings: Any) -> Callable[..., Any]:
    """``factory(device=None, size=None, **overrides)`` -> a cached guard context.

    The session's own context (no overrides) that cannot be built ends the
    session with one usage error; a variant that cannot be built fails the
    test that asked for it, in one line.
    """
    from dataclasses import replace

    from .contract.errors import GuardError
    from .model.context import build_context

    cache: dict[tuple, Any] = {}
    failures: dict[tuple, str] = {}

    def factory(**overrides: Any) -> Any:
        # Overrides equal to the session's settings name the session's own context.
        overrides = {k: v for k, v in overrides.items()
                     if v is not None and getattr(epam_settings, k, None) != v}
        key = tuple(sorted((k, repr(v)) for k, v in overrides.items()))
        if key not in cache and key not in failures:
            try:
                with _framework_quiet():
                    cache[key] = build_context(replace(epam_settings, **overrides))
            except GuardError as exc:
                failures[key] = f'epam-guard: {exc}'
                if not key:
                    pytest.exit(failures[key], returncode=pytest.ExitCode.USAGE_ERROR)
        if key in failures:
            pytest.fail(failures[key], pytrace=False)
        return cache[key]

    return factory


@pytest.fixture
def epam_device(request: pytest.FixtureRequest, epam_settings: Any) -> str:
    """``cuda`` for tests marked ``gpu``, otherwise the ``--epam-device`` option.

    A test that asks for CUDA (by the marker or the option) is skipped with a
    reason when no CUDA device is visible.
    """
    marked = request.node.get_closest_marker('gpu') is not None
    device = 'cuda' if marked else str(epam_settings.device)
    if device.startswith('cuda'):
        import torch

        if not torch.cuda.is_available():
            asked = 'the test is marked gpu' if marked else f'--epam-device {device}'
            pytest.skip(f'no CUDA device is visible (torch.cuda.is_available() is False) '
                        f'and {asked}')
    return device


@pytest.fixture
def epam_context(epam_context_factory: Callable[..., Any], epam_device: str) -> Any:
    """The guard context (config, built model, batch recipe) for this test's device."""
    return epam_context_factory(device=epam_device)


@pytest.fixture
def epam_batch(epam_context: Any) -> dict[str, Any]:
    """A synthetic collated batch for the context's config (one view per sample)."""
    from .model.batch import make_batch

    return make_batch(epam_context.recipe)


@pytest.fixture(scope='session')
def _epam_results_cache() -> dict[int, dict[str, Any]]:
    return {}


@pytest.fixture
def epam_results(epam_context: Any, pytestconfig: pytest.Config,
                 _epam_results_cache: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """name -> CheckResult of the checks (``--epam-only``/``--epam-skip``/``--epam-tier``),
    run once per context and session."""
    from .checks import select_checks
    from .run.engine import run_checks

    key = id(epam_context)
    if key not in _epam_results_cache:
        settings = epam_context.settings
        tier = getattr(settings, 'tier', None) or pytestconfig.getoption('epam_tier', None)
        names = select_checks(settings.only, settings.skip, tier)
        with _framework_quiet():
            results = run_checks(epam_context, names)
        _epam_results_cache[key] = {result.name: result for result in results}
    return _epam_results_cache[key]


@pytest.fixture
def epam_snapshot(snapshot: Any, pytestconfig: pytest.Config) -> Any:
    """syrupy's ``snapshot`` storing JSON under
    ``<rootdir>/snapshots/<test file relative to the rootdir, without .py>/``."""
    from .report.snapshot import extension_for, narrowed_files

    root = pytestconfig.rootpath
    narrowed = narrowed_files(pytestconfig.args, pytestconfig.invocation_params.dir)
    return snapshot.use_extension(extension_for(root / 'snapshots', root, narrowed))
