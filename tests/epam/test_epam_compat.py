"""Tests of epam.compat: the DRN placeholder is installed only where DRN is missing."""
from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

import pytest

from epam import compat


def _fake_mmaction(root: Path, with_drn: bool) -> importlib.machinery.ModuleSpec:
    """An ``mmaction``-like package layout under ``root``, with or without localizers/drn."""
    package = root / 'mmaction'
    localizers = package / 'models' / 'localizers'
    localizers.mkdir(parents=True)
    (package / '__init__.py').write_text('')
    if with_drn:
        (localizers / 'drn').mkdir()
        (localizers / 'drn' / '__init__.py').write_text('from .drn import DRN\n')
        (localizers / 'drn' / 'drn.py').write_text('class DRN: ...\n')
    spec = importlib.machinery.ModuleSpec('mmaction', None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    return spec


@pytest.fixture
def isolated_drn_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the real DRN entries of sys.modules; whatever the test adds is undone."""
    for name in (compat.DRN_MODULE, compat.DRN_IMPL_MODULE):
        monkeypatch.setitem(sys.modules, name, None)  # remembers the original
        monkeypatch.delitem(sys.modules, name)


def _use_spec(monkeypatch: pytest.MonkeyPatch, spec: importlib.machinery.ModuleSpec) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        compat.importlib.util, 'find_spec',
        lambda name, *args: spec if name == 'mmaction' else real_find_spec(name, *args))


def test_installs_the_placeholder_when_drn_is_missing(tmp_path: Path, monkeypatch,
                                                      isolated_drn_modules) -> None:
    _use_spec(monkeypatch, _fake_mmaction(tmp_path, with_drn=False))
    assert compat.drn_is_missing()
    assert compat.ensure_mmaction_models_importable() is True
    placeholder = sys.modules[compat.DRN_MODULE].DRN
    assert sys.modules[compat.DRN_IMPL_MODULE].DRN is placeholder
    with pytest.raises(compat.MissingDRNError, match='missing from this MMAction2'):
        placeholder()
    # a second call finds the placeholder and leaves it alone
    assert compat.ensure_mmaction_models_importable() is False
    assert sys.modules[compat.DRN_MODULE].DRN is placeholder


def test_leaves_a_complete_install_alone(tmp_path: Path, monkeypatch,
                                         isolated_drn_modules) -> None:
    _use_spec(monkeypatch, _fake_mmaction(tmp_path, with_drn=True))
    assert not compat.drn_is_missing()
    assert compat.ensure_mmaction_models_importable() is False
    assert compat.DRN_MODULE not in sys.modules


def test_does_nothing_without_mmaction(monkeypatch, isolated_drn_modules) -> None:
    _use_spec(monkeypatch, None)  # type: ignore[arg-type]  # no spec: mmaction is absent
    assert not compat.drn_is_missing()
    assert compat.ensure_mmaction_models_importable() is False


def test_placeholder_in_the_registry_raises_missing_drn_error() -> None:
    from mmaction.registry import MODELS

    drn = MODELS.get('DRN')
    if drn.__module__ != compat.DRN_IMPL_MODULE or \
            getattr(sys.modules.get(compat.DRN_MODULE), '__path__', None) != []:
        pytest.skip('this MMAction2 install ships the real DRN')
    with pytest.raises(compat.MissingDRNError):
        MODELS.build(dict(type='DRN'))
    assert issubclass(compat.MissingDRNError, ImportError)
