"""A syrupy extension: JSON snapshots under the project's top-level ``snapshots/``.

One folder per test module (``snapshots/<test module>/<test name>.json``),
floats rounded so that snapshots hold structure, not numerical noise. It
overrides only where files go and how floats are written; syrupy does the
rest, including refusing to change a snapshot without ``--snapshot-update``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from syrupy.extensions.json import JSONSnapshotExtension

FLOAT_DIGITS = 4


def round_floats(data: Any, digits: int = FLOAT_DIGITS) -> Any:
    """``data`` with every float rounded to ``digits`` decimals, containers rebuilt."""
    if isinstance(data, float):
        return round(data, digits)
    if isinstance(data, dict):
        return {key: round_floats(value, digits) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [round_floats(value, digits) for value in data]
    return data


class EPAMSnapshotExtension(JSONSnapshotExtension):
    """JSON snapshots in ``<root>/snapshots/<test module>/``; set ``root`` per project."""

    root: Path = Path('snapshots')

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(cls.root / test_location.basename)

    def serialize(self, data: Any, **kwargs: Any) -> Any:
        return super().serialize(round_floats(data), **kwargs)


def extension_for(root: Path) -> type[EPAMSnapshotExtension]:
    """The extension class storing snapshots under ``root`` (a subclass, no global state)."""
    return type('EPAMSnapshotExtension', (EPAMSnapshotExtension,), {'root': Path(root)})
