"""Compatibility shim for the MMAction2 1.2.0 release on the package index.

The fix lives in the guard (:mod:`epam_guard.model.compat`), which applies it without
importing this plugin; this module re-exports it so that ``import epam`` keeps
applying it before anything imports ``mmaction.models``. See that module for
what is filled in and when (only where the installed MMAction2 lacks it).
"""
from __future__ import annotations

import importlib.util  # noqa: F401  (callers patch find_spec through this module)

from epam_guard.model.compat import (
    DRN_IMPL_MODULE,
    DRN_MODULE,
    MissingDRNError,
    drn_is_missing,
    ensure_mmaction_models_importable,
    ensure_numpy_aliases,
)

__all__ = [
    'DRN_IMPL_MODULE', 'DRN_MODULE', 'MissingDRNError', 'drn_is_missing',
    'ensure_mmaction_models_importable', 'ensure_numpy_aliases'
]
