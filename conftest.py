"""Repository-level pytest wiring.

The guard's pytest plugin is normally loaded through its ``pytest11`` entry
point (after ``pip install -e .``). From a bare checkout on ``PYTHONPATH``
there is no entry point, so this conftest loads it instead (never twice).
``pytester`` drives the plugin in the plugin's own tests. Markers,
``--strict-markers`` and ``xfail_strict`` live in pyproject.toml.
"""
from __future__ import annotations

from importlib.metadata import entry_points

pytest_plugins = ['pytester']
if not any(ep.value == 'epam_guard.plugin' for ep in entry_points(group='pytest11')):
    pytest_plugins.append('epam_guard.plugin')
