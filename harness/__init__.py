"""EPAM guard: contract checks for MMAction2 recognizers (EPAM-Net and any other).

One engine, thin front ends: each rule of CONTRACT.md is a check function
``check(ctx) -> CheckResult`` (see :mod:`epam_guard.checks`), run by
:func:`run_checks` (:mod:`epam_guard.run.engine`); the ``epam-guard`` CLI
(:mod:`epam_guard.cli`) and the pytest plugin (:mod:`epam_guard.plugin`) only
render or assert on those results.

The package is built in layers, each importing only those below it (a test walks
the imports): ``contract`` < ``report`` < ``probe`` < ``model`` < ``checks`` <
``trace`` < ``run`` < the front ends (``cli``, ``plugin``, ``gates``, ``options``,
``bisect``). Heavy imports (torch, mmaction) happen when
a context is built, not on ``import epam_guard``; importing the package changes
no process state (environment variables, threads, warning filters).
"""
from .contract.errors import ConfigError, GuardError, SizeError
from .report.result import CheckResult, Finding, Status

__all__ = ['CheckResult', 'ConfigError', 'Finding', 'GuardError', 'SizeError', 'Status',
           'run_checks']


def __getattr__(name: str) -> object:
    # run_checks imports torch: only when it is asked for, not on ``import epam_guard``.
    if name == 'run_checks':
        from .run.engine import run_checks

        return run_checks
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
