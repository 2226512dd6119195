"""A syrupy extension: JSON snapshots under the project's top-level ``snapshots/``.

One folder per test file, keyed by the file's path relative to the rootdir
(``snapshots/tests/a/test_x/<test name>.json``), so two test files with the
same name in different folders never share snapshots. Floats are rounded so
that snapshots hold structure, not numerical noise. It overrides only where
files go and how floats are written; syrupy does the rest, including refusing
to change a snapshot without ``--snapshot-update``.
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


def relative_stem(test_file: Path | str, rootdir: Path | str) -> Path:
    """``<rootdir>/tests/a/test_x.py`` -> ``tests/a/test_x``; a file outside the rootdir
    keeps only its own name (``test_x``)."""
    path = Path(test_file).resolve()
    try:
        relative = path.relative_to(Path(rootdir).resolve())
    except ValueError:
        relative = Path(path.name)
    return relative.with_suffix('')


class EPAMSnapshotExtension(JSONSnapshotExtension):
    """JSON snapshots in ``<root>/<test file relative to rootdir, without .py>/``.

    ``root`` (the ``snapshots`` folder) and ``rootdir`` are set per project by
    :func:`extension_for`.
    """

    root: Path = Path('snapshots')
    rootdir: Path = Path('.')

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        # The last part stays the test file's basename: syrupy finds a file's
        # snapshot collections (and unused ones) by that name.
        return str(cls.root / relative_stem(test_location.filepath, cls.rootdir))

    def serialize(self, data: Any, **kwargs: Any) -> Any:
        return super().serialize(round_floats(data), **kwargs)


def extension_for(root: Path, rootdir: Path | None = None) -> type[EPAMSnapshotExtension]:
    """The extension class storing snapshots under ``root``, keyed by test paths relative
    to ``rootdir`` (default: ``root``'s parent). A subclass: no global state."""
    rootdir = Path(root).parent if rootdir is None else Path(rootdir)
    return type('EPAMSnapshotExtension', (EPAMSnapshotExtension,),
                {'root': Path(root), 'rootdir': rootdir})
