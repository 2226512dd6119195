"""Options declared once, for the CLI (``--size``) and pytest (``--epam-size``).

``add_options`` takes an ``addoption``-like callable (``argparse``'s
``add_argument`` or a pytest option group's ``addoption``) and a prefix, so the
two front ends cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

SIZES = ('tiny', 'ntu')
DEVICES = ('cpu', 'cuda', 'auto')


@dataclass(frozen=True)
class Option:
    """One option: its bare name and its argparse keyword arguments."""

    name: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def flag(self, prefix: str) -> str:
        return f'--{prefix}{self.name}'

    def dest(self, prefix: str) -> str:
        return f'{prefix}{self.name}'.replace('-', '_')


def check_names(text: str) -> list[str]:
    """``'a, b'`` -> ``['a', 'b']`` (for ``--only``/``--skip``)."""
    return [name.strip() for name in text.split(',') if name.strip()]


OPTIONS: tuple[Option, ...] = (
    Option('device', 'device to run on: cpu, cuda or auto (cuda when visible)',
           dict(default='cpu', choices=DEVICES)),
    Option('size', 'tiny: shrunken time and space, real channels (seconds); '
                   'ntu: the real NTU-60 shapes (minutes on CPU)',
           dict(default='tiny', choices=SIZES)),
    Option('batch-size', 'samples per synthetic batch (N)',
           dict(default=4, type=int)),
    Option('views', 'clips per sample (V) in the predict batch; '
                    'default: num_clips of the test pipeline',
           dict(default=None, type=int)),
    Option('cfg-options', 'override config entries, key=value (MMEngine syntax)',
           dict(default=None, nargs='+', metavar='KEY=VALUE')),
    Option('import-path', 'extra folder put first on sys.path before the config '
                          'is loaded (for a fork or plugin that is not installed)',
           dict(default=None, action='append', metavar='DIR')),
    Option('label-api', 'how data samples carry labels: gt_label (MMAction2 1.2) or '
                        'gt_labels.item (1.0/1.1 forks)',
           dict(default='gt_label', choices=('gt_label', 'gt_labels'))),
    Option('seed', 'seed for the model weights and synthetic data',
           dict(default=0, type=int)),
    Option('only', 'run only these checks (comma-separated names)',
           dict(default=None, type=check_names, metavar='A,B')),
    Option('skip', 'skip these checks (comma-separated names)',
           dict(default=None, type=check_names, metavar='A,B')),
    Option('timeout', 'seconds after which a single check is reported as hung',
           dict(default=300.0, type=float)),
)


def add_options(addoption: Callable[..., Any], prefix: str = '',
                exclude: tuple[str, ...] = ()) -> None:
    """Declare the shared options through ``addoption``.

    Args:
        addoption: ``ArgumentParser.add_argument`` or pytest's ``addoption``.
        prefix: prepended to every flag (``'epam-'`` for pytest).
        exclude: bare names not to declare.
    """
    for option in OPTIONS:
        if option.name not in exclude:
            addoption(option.flag(prefix), dest=option.dest(prefix), help=option.help,
                      **option.kwargs)


def parse_cfg_options(pairs: list[str] | None) -> dict[str, Any]:
    """``['a.b=1', 'c=x']`` -> ``{'a.b': 1, 'c': 'x'}`` with MMEngine's value parsing."""
    from mmengine.config import DictAction

    from .errors import GuardError

    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise GuardError(f'--cfg-options expects KEY=VALUE, but got {pair!r}')
        parsed[key] = DictAction._parse_iterable(value)
    return parsed
