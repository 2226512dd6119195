"""The MMAction2 wheel fix applies only to the release that needs it, never over a fork."""
from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

import pytest

from epam_guard.model import compat


def _mmaction(root: Path, version: str, localizers_init: str | None) -> Path:
    package = root / 'mmaction'
    localizers = package / 'models' / 'localizers'
    localizers.mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'version.py').write_text(f"__version__ = '{version}'\n")
    if localizers_init is not None:
        (localizers / '__init__.py').write_text(localizers_init)
    return package


@pytest.fixture
def found(monkeypatch):
    """``found(package)``: make ``package`` the mmaction Python would import."""
    for name in ('mmaction', compat.DRN_MODULE, compat.DRN_IMPL_MODULE):
        monkeypatch.delitem(sys.modules, name, raising=False)
    real = compat.importlib.util.find_spec

    def use(package: Path) -> None:
        spec = importlib.machinery.ModuleSpec('mmaction', None, is_package=True)
        spec.submodule_search_locations = [str(package)]
        monkeypatch.setattr(compat.importlib.util, 'find_spec',
                            lambda name, *a: spec if name == 'mmaction' else real(name, *a))

    return use


def test_a_1_1_layout_never_gets_the_placeholder(tmp_path, found):
    found(_mmaction(tmp_path, '1.1.0', 'from .bmn import BMN\n'))
    assert compat.mmaction_version() == '1.1.0'
    assert not compat.drn_is_missing()


def test_the_1_2_wheel_without_drn_needs_it(tmp_path, found):
    found(_mmaction(tmp_path, '1.2.0', 'from .drn.drn import DRN\n'))
    assert compat.drn_is_missing()


def test_numpy_alias_only_for_a_1_2_release(tmp_path, found, monkeypatch):
    import numpy

    monkeypatch.delattr(numpy, 'Inf', raising=False)
    found(_mmaction(tmp_path / 'old', '1.1.0', ''))
    assert compat.ensure_numpy_aliases() is False
    assert not hasattr(numpy, 'Inf')
    found(_mmaction(tmp_path / 'new', '1.2.0', ''))
    assert compat.ensure_numpy_aliases() is True
    assert getattr(numpy, 'Inf') == numpy.inf  # noqa: B009 (gone from NumPy 2's stubs)
