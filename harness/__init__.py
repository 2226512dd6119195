"""EPAM guard: contract checks for the EPAM-Net recognizer on MMAction2/MMEngine.

One engine, two thin front ends: each rule of CONTRACT.md is a check function
``check(ctx) -> CheckResult`` (see :mod:`epam_guard.checks`); the ``epam-guard``
CLI (:mod:`epam_guard.cli`) and the pytest plugin (:mod:`epam_guard.plugin`) only
render or assert on those results. Heavy imports (torch, mmaction) happen when
a context is built, not on ``import epam_guard``.
"""
import os

# The engine runs each check in a worker thread, so torch ops come from several
# threads, each with its own OpenMP team. With OpenMP's default active waiting,
# idle teams spin and starve the busy one on a small machine (measured on 2
# cores: 8 s instead of 0.5 s for one trace). Passive waiting must be chosen
# before torch loads OpenMP; a value the user set is kept.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from .errors import ConfigError, GuardError, SizeError  # noqa: E402
from .result import CheckResult, Finding, Status

__all__ = ['CheckResult', 'ConfigError', 'Finding', 'GuardError', 'SizeError', 'Status']
