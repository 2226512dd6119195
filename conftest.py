"""Repository-level pytest wiring.

The guard's pytest plugin is normally loaded through its ``pytest11`` entry
point (after ``pip install -e .``). From a bare checkout on ``PYTHONPATH``
there is no entry point, so this conftest loads it instead (never twice).
``pytester`` drives the plugin in the plugin's own tests. Markers,
``--strict-markers`` and ``xfail_strict`` live in pyproject.toml; what the
``gpu`` marker means in this repository (skip with a reason where no CUDA
device is visible) lives here, not in the plugin, which leaves other projects'
markers alone.
"""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ['pytester']
if not any(ep.value == 'epam_guard.plugin' for ep in entry_points(group='pytest11')):
    pytest_plugins.append('epam_guard.plugin')


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip this repository's ``gpu`` tests, with a reason, where CUDA is not visible."""
    if item.get_closest_marker('gpu') is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip('no CUDA device is visible (torch.cuda.is_available() is False)')
