"""Compatibility shim for the MMAction2 1.2.0 release on the package index.

The published 1.2.0 wheel and sdist lack the sub-package
``mmaction.models.localizers.drn``, yet ``mmaction/models/localizers/__init__.py``
imports ``DRN`` from it, so ``import mmaction.models`` fails with
``ModuleNotFoundError``. This module fills in exactly that sub-package, and only
when it is missing on disk: a complete install or a user's own fork (which has
the folder) is never shadowed.

The placeholder ``DRN`` is registered under MMAction2's own name so a config
that asks for it gets a clear error instead of a confusing registry miss.

MMAction2 1.2.0 also predates NumPy 2: ``MMCompact`` (in every pose pipeline of
the training config) reads ``np.Inf``, which NumPy 2 removed, so the first data
item of a training run dies with ``AttributeError``. The alias is restored, and
only when it is missing.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

DRN_MODULE = 'mmaction.models.localizers.drn'
DRN_IMPL_MODULE = DRN_MODULE + '.drn'


class MissingDRNError(ImportError):
    """Raised when the placeholder for the missing ``DRN`` localizer is used."""


def _placeholder_drn_class() -> type:
    """A stand-in ``DRN`` whose construction raises :class:`MissingDRNError`."""

    class DRN:  # noqa: D401 - placeholder, mirrors MMAction2's class name
        """Placeholder for MMAction2's DRN localizer (missing from the 1.2.0 wheel)."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            raise MissingDRNError(
                'mmaction.models.localizers.drn is missing from this MMAction2 '
                'install (a known defect of the 1.2.0 wheel), so DRN cannot be '
                'built; install MMAction2 from source to use it.')

    DRN.__module__ = DRN_IMPL_MODULE
    return DRN


def drn_is_missing() -> bool:
    """True when MMAction2 is installed but ships no ``localizers/drn`` package.

    Looks at the file system through the top-level package's search path, so it
    does not import ``mmaction.models`` (which is exactly what fails).
    """
    if DRN_MODULE in sys.modules:
        return False
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return False
    for root in spec.submodule_search_locations:
        drn_dir = Path(root, 'models', 'localizers', 'drn')
        if (drn_dir / '__init__.py').is_file() or (drn_dir / 'drn.py').is_file():
            return False
    return True


def ensure_numpy_aliases() -> bool:
    """Restore ``np.Inf`` (read by MMAction2 1.2.0's ``MMCompact``) on NumPy 2.

    Returns:
        bool: True when the alias was added by this call.
    """
    import numpy as np

    if hasattr(np, 'Inf'):
        return False
    setattr(np, 'Inf', np.inf)  # noqa: B010 (the name is gone from NumPy's stubs too)
    return True


def ensure_mmaction_models_importable() -> bool:
    """Install the ``DRN`` placeholder if, and only if, MMAction2 lacks it.

    Also restores the NumPy aliases MMAction2 1.2.0 reads
    (:func:`ensure_numpy_aliases`).

    Returns:
        bool: True when the placeholder was installed by this call.
    """
    ensure_numpy_aliases()
    if not drn_is_missing():
        return False
    package = types.ModuleType(DRN_MODULE)
    package.__path__ = []  # a package with nothing else in it
    package.__doc__ = 'Placeholder installed by epam.compat (missing from the wheel).'
    impl = types.ModuleType(DRN_IMPL_MODULE)
    impl.DRN = _placeholder_drn_class()  # type: ignore[attr-defined]
    package.drn = impl  # type: ignore[attr-defined]
    package.DRN = impl.DRN  # type: ignore[attr-defined]
    sys.modules[DRN_MODULE] = package
    sys.modules[DRN_IMPL_MODULE] = impl
    # Registered under MMAction2's own name, so `dict(type='DRN')` fails with
    # MissingDRNError rather than "DRN is not in the model registry".
    from mmaction.registry import MODELS
    if 'DRN' not in MODELS.module_dict:
        MODELS.register_module(name='DRN', module=impl.DRN)
    return True
