"""A syrupy extension: JSON snapshots under the project's top-level ``snapshots/``.

One folder per test file, keyed by the file's path relative to the rootdir
(``snapshots/tests/a/test_x/<test name>.json``), so two test files with the
same name in different folders never share snapshots. Floats are rounded so
that snapshots hold structure, not numerical noise. It overrides only where
files go, how floats are written and which files a session narrowed to some
tests of a file claims (below); syrupy does the rest, including refusing to
change a snapshot without ``--snapshot-update``.

syrupy keeps the snapshots of tests deselected by ``t.py::test_other`` by
matching the test paths given to pytest against the snapshot's folder, which
it expects next to the test file; under ``snapshots/`` that match fails and
``--snapshot-update`` would delete the siblings' snapshots as unused. So a
file the session narrowed to some of its tests claims only those tests'
snapshots (:func:`narrowed_files`).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from syrupy.extensions.json import JSONSnapshotExtension

FLOAT_DIGITS = 4
#: Changed key paths listed above syrupy's line diff.
PATHS_SHOWN = 20


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


def changed_paths(stored: Any, received: Any, path: str = '') -> Iterator[str]:
    """``key.path[index]: snapshot X, received Y`` for each place two JSON values differ."""
    where = path or '(top level)'
    if isinstance(stored, dict) and isinstance(received, dict):
        for key in sorted(set(stored) | set(received), key=str):
            inner = f'{path}.{key}' if path else str(key)
            if key not in received:
                yield f'{inner}: in the snapshot, not received'
            elif key not in stored:
                yield f'{inner}: received, not in the snapshot'
            else:
                yield from changed_paths(stored[key], received[key], inner)
    elif isinstance(stored, list) and isinstance(received, list):
        if len(stored) != len(received):
            yield f'{where}: {len(stored)} items in the snapshot, {len(received)} received'
        for index, (old, new) in enumerate(zip(stored, received)):
            yield from changed_paths(old, new, f'{path}[{index}]')
    elif stored != received:
        yield f'{where}: snapshot {json.dumps(stored)}, received {json.dumps(received)}'


def narrowed_files(args: Iterable[str], invocation_dir: Path | str) -> dict[str, tuple[str, ...]]:
    """Test files the session narrowed to some of their tests -> those tests' dotted node paths.

    ``['tests/a/t.py::test_other', 'tests/b']`` -> ``{'/abs/tests/a/t.py': ('test_other',)}``.
    """
    narrowed: dict[str, list[str]] = {}
    for arg in args:
        path, *parts = str(arg).split('::')
        if parts:
            absolute = (Path(invocation_dir) / path).resolve()
            narrowed.setdefault(str(absolute), []).append('.'.join(parts))
    return {path: tuple(nodes) for path, nodes in narrowed.items()}


def selected(snapshot_name: str, nodes: Iterable[str]) -> bool:
    """Whether the snapshot named ``snapshot_name`` belongs to one of the node paths
    (``TestA`` holds ``TestA.test_x``; ``test_x`` holds ``test_x.1`` and ``test_x[a]``)."""
    return any(snapshot_name == node or snapshot_name.startswith((f'{node}.', f'{node}['))
               or node.startswith(snapshot_name) for node in nodes)


class EPAMSnapshotExtension(JSONSnapshotExtension):
    """JSON snapshots in ``<root>/<test file relative to rootdir, without .py>/``.

    ``root`` (the ``snapshots`` folder) and ``rootdir`` are set per project by
    :func:`extension_for`.
    """

    root: Path = Path('snapshots')
    rootdir: Path = Path('.')
    #: :func:`narrowed_files` of the session.
    narrowed: dict[str, tuple[str, ...]] = {}

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        # The last part stays the test file's basename: syrupy finds a file's
        # snapshot collections (and unused ones) by that name.
        return str(cls.root / relative_stem(test_location.filepath, cls.rootdir))

    def serialize(self, data: Any, **kwargs: Any) -> Any:
        return super().serialize(round_floats(data), **kwargs)

    def diff_lines(self, serialized_data: Any, snapshot_data: Any) -> Iterator[str]:
        """The key paths that changed, then syrupy's own line diff."""
        try:
            paths = list(changed_paths(json.loads(str(snapshot_data)),
                                       json.loads(str(serialized_data))))
        except ValueError:  # a snapshot that is not JSON: syrupy's diff says it all
            paths = []
        for line in paths[:PATHS_SHOWN]:
            yield f'changed at {line}'
        if len(paths) > PATHS_SHOWN:
            yield f'... {len(paths) - PATHS_SHOWN} more changed paths'
        yield from super().diff_lines(serialized_data, snapshot_data)

    def owns_snapshot_collection(self, *, filepath: str, test_location: Any) -> bool:
        if not super().owns_snapshot_collection(filepath=filepath, test_location=test_location):
            return False
        nodes = self.narrowed.get(str(Path(test_location.filepath).resolve()))
        own_file = Path(filepath).parent == Path(self.dirname(test_location=test_location))
        return nodes is None or not own_file or selected(Path(filepath).stem, nodes)


def extension_for(root: Path, rootdir: Path | None = None,
                  narrowed: dict[str, tuple[str, ...]] | None = None
                  ) -> type[EPAMSnapshotExtension]:
    """The extension class storing snapshots under ``root``, keyed by test paths relative
    to ``rootdir`` (default: ``root``'s parent); ``narrowed`` is :func:`narrowed_files` of
    the session. A subclass: no global state."""
    rootdir = Path(root).parent if rootdir is None else Path(rootdir)
    return type('EPAMSnapshotExtension', (EPAMSnapshotExtension,),
                {'root': Path(root), 'rootdir': rootdir, 'narrowed': dict(narrowed or {})})
