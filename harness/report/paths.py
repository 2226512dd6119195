"""Where ``--json``/``--junit`` may write: never over an input, never over a file of another kind.

Checked by the CLI before anything runs (exit 2, one line), so a report path
that would destroy something, or that cannot be written, is refused in a
fraction of a second rather than after the run:

- the config itself, a file it imports (``_base_``, recursively) or the
  ``--hierarchy`` file;
- an existing file that is not what the report is (JSON for ``--json``, XML
  for ``--junit``): a source file, a checkpoint, a notebook;
- both reports on one path;
- a path that cannot be created or written (probed by creating the file and
  removing it again, or by opening an existing one for appending).

Reading the config's bases needs MMEngine, so it happens only for an output
that exists and is of the report's kind (the one case the other rules let
through).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from ..contract.errors import GuardError

#: An existing report larger than this is no report the guard wrote.
MAX_REPORT_BYTES = 64 * 2**20
KINDS = {'json': 'JSON', 'junit': 'XML'}


def _parses(path: Path, kind: str) -> bool:
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return False
        if path.stat().st_size == 0:
            return True  # nothing to lose (e.g. a probe left by an earlier run)
        if kind == 'json':
            json.loads(path.read_bytes())
        else:
            ElementTree.parse(path)
    except (OSError, ValueError, ElementTree.ParseError):
        return False
    return True


def config_inputs(config: Path) -> list[Path]:
    """The config and the files it imports through ``_base_``, recursively (MMEngine's reading)."""
    from mmengine.config import Config

    found: list[Path] = []
    pending = [config.resolve()]
    while pending:
        current = pending.pop()
        if current in found:
            continue
        found.append(current)
        with contextlib.suppress(Exception):  # unreadable here: the run says why, later
            for base in Config._get_base_files(str(current)):
                path, _ = Config._get_cfg_path(base, str(current))
                pending.append(Path(current.parent, path).resolve())
    return found


def refuse_unsafe(outputs: dict[str, Path | None], config: Path,
                  others: dict[str, Any] | None = None, probe: bool = True) -> None:
    """Raise a :class:`GuardError` (exit 2) for the first report path that is unsafe.

    Args:
        outputs: ``{'json': path, 'junit': path}`` (None: not asked for).
        config: the config the run reads.
        others: further inputs by the option that names them (``{'--hierarchy': path}``).
        probe: create (and remove) or open each path, to prove it writable.
    """
    given = {kind: Path(path) for kind, path in outputs.items() if path is not None}
    resolved = {kind: path.resolve() for kind, path in given.items()}
    if len(set(resolved.values())) < len(resolved):
        raise GuardError(f'--json and --junit name the same file {given["json"]}; '
                         'give each report its own path')
    inputs = {config.resolve(): 'the config'}
    for option, value in (others or {}).items():
        with contextlib.suppress(OSError, ValueError):  # inline JSON, not a path
            if value and Path(value).is_file():
                inputs.setdefault(Path(value).resolve(), f'the {option} file')
    for kind, path in given.items():
        flag = f'--{kind}'
        if resolved[kind] in inputs:
            raise GuardError(f'{flag} {path} is {inputs[resolved[kind]]}; the report would '
                             'overwrite it: give another path')
        if path.exists():
            if not _parses(path, kind):
                raise GuardError(f'{flag} {path} exists and is not a {KINDS[kind]} report; '
                                 'refusing to overwrite it: give another path')
            if resolved[kind] in config_inputs(config):
                raise GuardError(f'{flag} {path} is a file the config {config} imports; '
                                 'the report would overwrite it: give another path')
        if probe:
            _probe(path, flag)


def _probe(path: Path, flag: str) -> None:
    existed = path.exists()
    try:
        with open(path, 'a', encoding='utf-8'):
            pass
        if not existed:
            os.unlink(path)
    except OSError as exc:
        raise GuardError(f'{flag} {path} cannot be written ({exc.strerror}); '
                         'give a writable path') from None
