"""Whether an ``--epam-*`` value, given as its own word, moved pytest's rootdir or ini file.

pytest finds its rootdir and ini file before it loads any plugin, so it cannot
know that ``/elsewhere/cfg.py`` in ``pytest --epam-config /elsewhere/cfg.py``
is an option's value: it takes it for a test path, and the common ancestor of
the test paths decides where the ini file is looked for. The project's
``pytest.ini`` is then ignored and snapshots are looked for (and written, with
``--snapshot-update``) under the wrong root.

No plugin runs early enough to prevent that, so the plugin checks it: the
rootdir and ini file pytest chose are compared with those it would choose
without the plugin's values (pytest's own ``determine_setup``), and a
difference ends the session with one usage error that names the form pytest
reads correctly, ``--epam-config=PATH``.
"""
from __future__ import annotations

import inspect
import os
import shlex
from pathlib import Path
from typing import Any


def separate_values(args: list[str], flags: set[str]) -> list[tuple[str, str]]:
    """``(flag, value)`` for each of ``flags`` given its value as a word of its own."""
    return [(word, args[index + 1]) for index, word in enumerate(args[:-1])
            if word in flags and not args[index + 1].startswith('-')]


def _setup(config: Any, args: list[str]) -> tuple[Path, Path | None] | None:
    """``(rootdir, ini file)`` as pytest determines them for ``args``; None where this
    pytest's ``determine_setup`` cannot be called (a private function that changes)."""
    try:
        from _pytest.config.findpaths import determine_setup
    except ImportError:
        return None
    option = config.option
    known = {'inifile': getattr(option, 'inifilename', None),
             'override_ini': getattr(option, 'override_ini', None),
             'args': args, 'rootdir_cmd_arg': getattr(option, 'rootdir', None) or None,
             'invocation_dir': config.invocation_params.dir, 'config': None}
    try:
        wanted = inspect.signature(determine_setup).parameters
        found = determine_setup(**{k: v for k, v in known.items() if k in wanted})
    except (TypeError, ValueError):
        return None
    return Path(found[0]), (Path(found[1]) if found[1] is not None else None)


def moved_rootdir(config: Any, flags: set[str]) -> str | None:
    """A usage error when the plugin's values changed the rootdir or ini file, else None."""
    invoked = [*shlex.split(os.environ.get('PYTEST_ADDOPTS', '')),
               *map(str, config.invocation_params.args)]
    given = separate_values(invoked, flags)
    if not given:
        return None
    tests = [str(arg) for arg in getattr(config.option, 'file_or_dir', None) or []]
    meant = _setup(config, tests)
    for flag, value in given:
        taken = _setup(config, [*tests, value])
        if taken is not None and meant is not None and taken != meant:
            return (f'{flag} {value}: pytest took the value for a test path, which moves its '
                    f'rootdir to {taken[0]} (ini file {taken[1]}) from {meant[0]} (ini file '
                    f'{meant[1]}); write {flag}={value} (one word)')
    return None
