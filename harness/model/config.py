"""The config a run checks: the default target (found without importing anything heavy),
the path the user named, and ``--cfg-options`` parsed as MMEngine parses them."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from ..contract.errors import ConfigError, GuardError

DEFAULT_CONFIG = 'epam_ntu60.py'


def default_config_path() -> Path:
    """``configs/epam_ntu60.py``, the guard's default target; a one-line error where neither
    an install nor a checkout has it.

    Installed, it ships inside the package as ``epam/configs/``; in a source
    checkout it is the top-level ``configs/`` next to ``epam/``. Only the
    package's location is looked up: ``epam`` itself is not imported.
    """
    spec = importlib.util.find_spec('epam')
    if spec is not None and spec.origin:
        package = Path(spec.origin).parent
        for folder in (package / 'configs', package.parent / 'configs'):
            if (folder / DEFAULT_CONFIG).is_file():
                return folder / DEFAULT_CONFIG
    raise ConfigError(f'the default config configs/{DEFAULT_CONFIG} is not installed; '
                      'pass a config path')


def resolve_config(args: argparse.Namespace) -> str:
    """The absolute path of the config ``args.config`` names, or of the default config."""
    if args.config is None:
        return str(default_config_path())
    path = Path(args.config)
    if not path.exists():
        raise ConfigError(f'config {path} does not exist')
    if not path.is_file():
        raise ConfigError(f'config {path} is not a file')
    return str(path.resolve())


def cfg_option(text: str) -> str:
    """``KEY=VALUE`` with balanced brackets and quotes (MMEngine parses the value later)."""
    key, sep, value = text.partition('=')
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f'expects KEY=VALUE, but got {text!r}')
    if any(not part for part in key.split('.')):
        raise argparse.ArgumentTypeError(f'{key!r} is not a dotted config key')
    for opening, closing in ('[]', '()'):
        if value.count(opening) != value.count(closing):
            raise argparse.ArgumentTypeError(
                f'{text!r}: unbalanced {opening}{closing} in the value')
    if value.count('"') % 2 or value.count("'") % 2:
        raise argparse.ArgumentTypeError(f'{text!r}: unbalanced quotes in the value')
    return text


def parse_cfg_options(pairs: list[str] | None) -> dict[str, Any]:
    """``['a.b=1', 'c=x']`` -> ``{'a.b': 1, 'c': 'x'}`` with MMEngine's value parsing."""
    from mmengine.config import DictAction

    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        try:
            key, _, value = cfg_option(pair).partition('=')
            parsed[key] = DictAction._parse_iterable(value)
        except (argparse.ArgumentTypeError, AssertionError, ValueError) as exc:
            raise GuardError(f'--cfg-options {pair!r}: {exc or "cannot be parsed"}') from None
    return parsed
