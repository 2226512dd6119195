"""Options declared once, for the CLI (``--size``) and pytest (``--epam-size``).

``add_options`` takes an ``addoption``-like callable (``argparse``'s
``add_argument`` or a pytest option group's ``addoption``) and a prefix, so the
two front ends cannot drift apart. Every value is validated here, by the
option's ``type``, before torch or MMAction2 is imported: a bad argument
answers in well under a second with one line.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .model.config import cfg_option

SIZES = ('tiny', 'ntu')
DEVICES = ('cpu', 'cuda', 'auto')
LAUNCHERS = ('none', 'pytorch', 'slurm')
TIER_CHOICES = ('fast', 'launch', 'all')
MAX_SEED = 2**32 - 1  # what NumPy's and torch's seeding accept
#: The longest --timeout: a week, far below what timedelta, threading and the
#: process-group timeouts hold (1e15 seconds overflowed them).
MAX_TIMEOUT = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Option:
    """One option: its bare name and its argparse keyword arguments."""

    name: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Overrides for pytest, where an option taking several values would swallow
    #: the test paths after it (``--epam-cfg-options a=1 tests/``).
    pytest_kwargs: dict[str, Any] = field(default_factory=dict)

    def flag(self, prefix: str) -> str:
        return f'--{prefix}{self.name}'

    def dest(self, prefix: str) -> str:
        return f'{prefix}{self.name}'.replace('-', '_')


def _invalid(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def check_names(text: str) -> list[str]:
    """``'a, b'`` -> ``['a', 'b']`` (for ``--only``/``--skip``); unknown names are refused."""
    from .checks import CHECKS

    names = [name.strip() for name in text.split(',') if name.strip()]
    if not names:
        raise _invalid(f'{text!r} names no check; choose from {", ".join(CHECKS)}')
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        raise _invalid(f'unknown check(s) {", ".join(unknown)}; choose from {", ".join(CHECKS)}')
    return names


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _invalid(f'expected a whole number, but got {text!r}') from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _whole(text)
    if value < 1:
        raise _invalid(f'must be at least 1, but got {value}')
    return value


def seed(text: str) -> int:
    """A seed NumPy and torch accept: ``0 <= seed <= 2**32 - 1``."""
    value = _whole(text)
    if not 0 <= value <= MAX_SEED:
        raise _invalid(f'must be in [0, {MAX_SEED}], but got {value}')
    return value


def seconds(text: str) -> float:
    """A finite, positive number of seconds, at most :data:`MAX_TIMEOUT`."""
    try:
        value = float(text)
    except ValueError:
        raise _invalid(f'expected seconds, but got {text!r}') from None
    if not math.isfinite(value) or value <= 0:
        raise _invalid(f'must be a finite number of seconds above 0, but got {text}')
    if value > MAX_TIMEOUT:
        raise _invalid(f'must be at most {MAX_TIMEOUT:.0f} seconds (7 days), but got {text}')
    return value


def folder(text: str) -> str:
    """An existing folder (for ``--import-path``)."""
    if not Path(text).is_dir():
        raise _invalid(f'{text} is not an existing folder')
    return str(Path(text).resolve())


def output_file(text: str) -> Path:
    """A path a report can be written to: its folder exists and is writable, it is no folder."""
    path = Path(text)
    parent = path.parent if str(path.parent) else Path('.')
    if path.is_dir():
        raise _invalid(f'{text} is a folder; give a file path')
    if not parent.is_dir():
        raise _invalid(f'the folder of {text} does not exist')
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise _invalid(f'{text} is not writable')
    return path


OPTIONS: tuple[Option, ...] = (
    Option('device', 'device to run on: cpu, cuda or auto (cuda when visible)',
           dict(default='cpu', choices=DEVICES)),
    Option('size', 'tiny: shrunken time and space, real channels (seconds); '
                   'ntu: the real NTU-60 shapes (minutes on CPU)',
           dict(default='tiny', choices=SIZES)),
    Option('batch-size', 'samples per synthetic batch (N)',
           dict(default=4, type=positive_int)),
    Option('views', 'clips per sample (V) in the predict batch; '
                    'default: num_clips of the test pipeline',
           dict(default=None, type=positive_int)),
    Option('cfg-options', 'override a config entry, KEY=VALUE (MMEngine syntax); repeat '
                          'the option or give several pairs',
           dict(default=None, nargs='+', action='extend', type=cfg_option,
                metavar='KEY=VALUE'),
           pytest_kwargs=dict(nargs=None, action='append')),
    Option('import-path', 'folder put first on the import path before anything imports '
                          'MMAction2 (a fork or plugin that is not installed); repeatable',
           dict(default=None, action='append', type=folder, metavar='DIR')),
    Option('label-api', 'how data samples carry labels: gt_label (MMAction2 1.2), gt_labels '
                        '(gt_labels.item of 1.0/1.1 forks) or auto (the config\'s '
                        'epam_guard.label_api, else what the installed MMAction2 makes)',
           dict(default=None, choices=('auto', 'gt_label', 'gt_labels'))),
    Option('hierarchy', 'the fine->coarse label hierarchy the guard checks against: a JSON '
                        'or Python file, or inline JSON (default: the config\'s '
                        'epam_guard.hierarchy, then model.hierarchy, then NTU-60\'s for a '
                        'head with coarse classes; none for a head without)',
           dict(default=None, metavar='SPEC')),
    Option('seed', 'seed for the model weights and synthetic data',
           dict(default=0, type=seed)),
    Option('tier', 'which checks: fast (contract checks, seconds; what pre-commit runs), '
                   'launch (pipelines, Runner, DDP) or all',
           dict(default='all', choices=TIER_CHOICES)),
    Option('only', 'run only these checks (comma-separated names)',
           dict(default=None, type=check_names, metavar='A,B')),
    Option('skip', 'skip these checks (comma-separated names)',
           dict(default=None, type=check_names, metavar='A,B')),
    Option('timeout', 'seconds one check may run before it is stopped and reported as hung',
           dict(default=300.0, type=seconds)),
    Option('launcher', 'none: the guard starts what it needs; pytorch / slurm: run as one '
                       'rank of a torchrun / srun job (as MMEngine\'s tools/train.py)',
           dict(default='none', choices=LAUNCHERS)),
    Option('strict', 'treat warnings as failures',
           dict(default=False, action='store_true')),
)


def add_options(addoption: Callable[..., Any], prefix: str = '',
                exclude: tuple[str, ...] = ()) -> None:
    """Declare the shared options through ``addoption``.

    Args:
        addoption: ``ArgumentParser.add_argument`` or pytest's ``addoption``.
        prefix: prepended to every flag; a prefix (``'epam-'``) means pytest, where
            options take one value each (repeat the flag for more).
        exclude: bare names not to declare.
    """
    for option in OPTIONS:
        if option.name in exclude:
            continue
        kwargs = {**option.kwargs, **(option.pytest_kwargs if prefix else {})}
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        addoption(option.flag(prefix), dest=option.dest(prefix), help=option.help, **kwargs)


