"""What the MMAction2 releases on the package index lack, filled in only where it is missing.

The published MMAction2 1.2.0 wheel and sdist lack the sub-package
``mmaction.models.localizers.drn``, yet ``mmaction/models/localizers/__init__.py``
imports ``DRN`` from it, so ``import mmaction.models`` fails with
``ModuleNotFoundError``. :func:`ensure_mmaction_models_importable` fills in
exactly that sub-package, and only when the ``mmaction`` that Python will
import has no such folder on disk: a complete install, or a user's own fork
(1.0/1.1 forks have no DRN import at all, 1.2 forks ship the folder), is never
shadowed. The placeholder ``DRN`` is registered under MMAction2's own name so
that a config asking for it gets a clear error rather than a registry miss.

MMAction2 1.2.0 also predates NumPy 2: ``MMCompact`` (in every pose pipeline of
the training config) reads ``np.Inf``, which NumPy 2 removed. The alias is
restored only when it is missing and the ``mmaction`` to be imported is a 1.2
release; a fork's own NumPy 1 idioms are diagnosed, not patched over.

Nothing here imports the reference plugin ``epam``: the guard applies this
before it reads a config, and ``epam`` re-exports it for its own users.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

DRN_MODULE = 'mmaction.models.localizers.drn'
DRN_IMPL_MODULE = DRN_MODULE + '.drn'
#: The MMAction2 release whose own code reads ``np.Inf``.
NUMPY_ALIAS_RELEASE = '1.2.'

__all__ = [
    'DRN_IMPL_MODULE', 'DRN_MODULE', 'MissingDRNError', 'drn_is_missing',
    'ensure_mmaction_models_importable', 'ensure_numpy_aliases', 'mmaction_root',
    'mmaction_version'
]


class MissingDRNError(ImportError):
    """Raised when the placeholder for the missing ``DRN`` localizer is used."""


def _placeholder_drn_class() -> type:
    """A stand-in ``DRN`` whose construction raises :class:`MissingDRNError`."""

    class DRN:
        """Placeholder for MMAction2's DRN localizer (missing from the 1.2.0 wheel)."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            raise MissingDRNError(
                'mmaction.models.localizers.drn is missing from this MMAction2 '
                'install (a known defect of the 1.2.0 wheel), so DRN cannot be '
                'built; install MMAction2 from source to use it.')

    DRN.__module__ = DRN_IMPL_MODULE
    return DRN


def mmaction_root() -> Path | None:
    """The folder of the ``mmaction`` package Python would import, without importing it."""
    module = sys.modules.get('mmaction')
    locations = list(getattr(module, '__path__', None) or [])
    if not locations:
        spec = importlib.util.find_spec('mmaction')
        if spec is None or not spec.submodule_search_locations:
            return None
        locations = list(spec.submodule_search_locations)
    return Path(locations[0])


def mmaction_version(root: Path | None = None) -> str | None:
    """``__version__`` of ``mmaction/version.py`` under ``root``, read as text (no import)."""
    root = root or mmaction_root()
    if root is None:
        return None
    try:
        text = (root / 'version.py').read_text(encoding='utf-8')
    except OSError:
        return None
    found = re.search(r"""__version__\s*=\s*['"]([^'"]+)['"]""", text)
    return found.group(1) if found else None


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
    localizers = [Path(root, 'models', 'localizers') for root in spec.submodule_search_locations]
    for folder in localizers:
        drn_dir = folder / 'drn'
        if (drn_dir / '__init__.py').is_file() or (drn_dir / 'drn.py').is_file():
            return False
    # A release whose localizers never import DRN (1.0/1.1) does not need it.
    return not any(_never_imports_drn(folder / '__init__.py') for folder in localizers)


def _never_imports_drn(init: Path) -> bool:
    try:
        return 'drn' not in init.read_text(encoding='utf-8')
    except OSError:
        return False


def ensure_numpy_aliases() -> bool:
    """Restore ``np.Inf`` on NumPy 2 for an MMAction2 1.2 release, which reads it.

    Returns:
        bool: True when the alias was added by this call.
    """
    import numpy as np

    if hasattr(np, 'Inf'):
        return False
    version = mmaction_version()
    if version is None or not version.startswith(NUMPY_ALIAS_RELEASE):
        return False
    setattr(np, 'Inf', np.inf)  # noqa: B010 (the name is gone from NumPy's stubs too)
    return True


def ensure_mmaction_models_importable() -> bool:
    """Install the ``DRN`` placeholder if, and only if, MMAction2 lacks it.

    Also restores the NumPy alias MMAction2 1.2 reads (:func:`ensure_numpy_aliases`).

    Returns:
        bool: True when the placeholder was installed by this call.
    """
    ensure_numpy_aliases()
    if not drn_is_missing():
        return False
    package = types.ModuleType(DRN_MODULE)
    package.__path__ = []  # a package with nothing else in it
    package.__doc__ = 'Placeholder installed by epam_guard.model.compat (missing from the wheel).'
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
