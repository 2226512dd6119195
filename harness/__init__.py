"""EPAM guard: contract checks for the EPAM-Net recognizer on MMAction2/MMEngine.

One engine, two thin front ends: each rule of CONTRACT.md is a check function
``check(ctx) -> CheckResult`` (see :mod:`epam_guard.checks`); the ``epam-guard``
CLI (:mod:`epam_guard.cli`) and the pytest plugin (:mod:`epam_guard.plugin`) only
render or assert on those results. Heavy imports (torch, mmaction) happen when
a context is built, not on ``import epam_guard``; importing the package changes
no process state (environment variables, threads, warning filters).
"""
from .errors import ConfigError, GuardError, SizeError
from .result import CheckResult, Finding, Status

__all__ = ['CheckResult', 'ConfigError', 'Finding', 'GuardError', 'SizeError', 'Status']
