"""The guard's own fine->coarse label mapping: the referee the label checks compare against.

CONTRACT §5 says one hierarchy is used everywhere. The guard must not take it
from the model under test (a model that builds a wrong mapping would then
agree with itself), so it builds its own, from the first of:

1. ``--hierarchy SPEC`` (``settings.hierarchy``);
2. the guard-only config key ``epam_guard = dict(hierarchy=SPEC)`` (top level,
   never passed to the model, so a fork whose recognizer takes no
   ``hierarchy`` argument can still declare one);
3. the model's own config entry ``model.hierarchy``;
4. the NTU-60 grouping (this module's own copy of the table), for a head that
   predicts coarse classes (``num_coarse_classes``).

A model whose head predicts no coarse classes and whose config gives no
hierarchy has none: :func:`build_hierarchy` returns None, and its labels are
the fine labels alone.

A ``SPEC`` is, in one clear format, **a list ``coarse_of_fine`` of length
``num_classes``**: entry ``f`` is the coarse class of fine label ``f``, and the
coarse classes are ``0 .. K-1`` with none skipped, e.g. ``[0, 0, 1, 1, 1, 2]``.
``--hierarchy`` takes it inline as JSON, or a path to a ``.json`` file holding
it, or a path to a ``.py`` file that defines ``coarse_of_fine`` (or
``hierarchy``). The reference plugin's config form,
``dict(num_classes=60, groups=[[0, 9], [10, 19], ...])`` (inclusive ranges),
is read too, wherever a SPEC is.
"""
from __future__ import annotations

import json
import runpy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

#: NTU-60 fine classes -> 8 coarse groups, as inclusive label ranges.
NTU60_GROUPS = ((0, 9), (10, 19), (20, 29), (30, 39), (40, 44), (45, 49), (50, 54), (55, 59))
NTU60_CLASSES = 60
#: The guard-only top-level config key.
GUARD_KEY = 'epam_guard'
_SHOWN = 8


@dataclass(frozen=True)
class Hierarchy:
    """A validated fine->coarse mapping and where it came from.

    Call it on a 1-D int64 tensor of fine labels to get their coarse labels.
    """

    coarse_of_fine: tuple[int, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.coarse_of_fine)

    @property
    def num_coarse_classes(self) -> int:
        return max(self.coarse_of_fine) + 1

    def __call__(self, fine: torch.Tensor) -> torch.Tensor:
        """Coarse labels of ``fine`` (int64, same shape and device)."""
        import torch  # here, not at import: the contract layer stays free of torch

        fine = torch.as_tensor(fine)
        if fine.numel() and (int(fine.min()) < 0 or int(fine.max()) >= self.num_classes):
            raise ValueError(f'fine labels must lie in [0, {self.num_classes}), but got '
                             f'{fine.flatten().tolist()[:_SHOWN]}')
        table = torch.tensor(self.coarse_of_fine, dtype=torch.long, device=fine.device)
        return table[fine.long()]


def _from_groups(groups: Any, num_classes: int, where: str) -> list[int]:
    """Inclusive ``[lo, hi]`` ranges -> ``coarse_of_fine``; overlaps and gaps are refused."""
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or not groups:
        raise ConfigError(f'{where}: groups must be a list of inclusive [lo, hi] label ranges, '
                          f'but got {groups!r}')
    mapping: list[int | None] = [None] * num_classes
    for coarse, group in enumerate(groups):
        if (isinstance(group, (str, bytes)) or not isinstance(group, Sequence)
                or len(group) != 2 or not all(_is_int(v) for v in group)):
            raise ConfigError(f'{where}: group {coarse} must be [lo, hi], but got {group!r}')
        lo, hi = group
        if not 0 <= lo <= hi < num_classes:
            raise ConfigError(f'{where}: group {coarse} = [{lo}, {hi}] is outside '
                              f'0..{num_classes - 1} (num_classes={num_classes})')
        for fine in range(lo, hi + 1):
            if mapping[fine] is not None:
                raise ConfigError(f'{where}: fine label {fine} is in group {mapping[fine]} and '
                                  f'in group {coarse}; each label must be in exactly one')
            mapping[fine] = coarse
    missing = [fine for fine, coarse in enumerate(mapping) if coarse is None]
    if missing:
        raise ConfigError(f'{where}: {len(missing)} fine labels are in no group: '
                          f'{missing[:_SHOWN]}')
    return [int(c) for c in mapping if c is not None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _mapping(spec: Any, num_classes: int, where: str) -> list[int]:
    """A SPEC (list ``coarse_of_fine``, or the ranges dict) -> ``coarse_of_fine``."""
    if isinstance(spec, Mapping):
        if 'coarse_of_fine' in spec:
            return _mapping(list(spec['coarse_of_fine']), num_classes, where)
        if 'groups' not in spec:
            raise ConfigError(f'{where}: expected a list coarse_of_fine or dict(num_classes=..., '
                              f'groups=[[lo, hi], ...]), but got keys {sorted(spec)}')
        declared = spec.get('num_classes', num_classes)
        if declared != num_classes:
            raise ConfigError(f'{where}: num_classes is {declared} but the head has '
                              f'{num_classes} (cls_head.num_classes)')
        return _from_groups(spec['groups'], num_classes, where)
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence):
        raise ConfigError(f'{where}: expected a list coarse_of_fine of {num_classes} ints, '
                          f'but got {type(spec).__name__}')
    values = list(spec)
    if not all(_is_int(v) for v in values):
        bad = next(v for v in values if not _is_int(v))
        raise ConfigError(f'{where}: coarse_of_fine must hold ints, but holds {bad!r}')
    if len(values) != num_classes:
        raise ConfigError(f'{where}: coarse_of_fine maps {len(values)} fine labels but the head '
                          f'has {num_classes} (cls_head.num_classes); map each label once')
    used = sorted(set(values))
    if used != list(range(len(used))):
        skipped = sorted(set(range(max(used) + 1)) - set(used)) if used[0] >= 0 else []
        raise ConfigError(f'{where}: coarse classes must be 0..K-1 with none skipped, but got '
                          f'{used[:_SHOWN]}' + (f' (missing {skipped[:_SHOWN]})' if skipped
                                                 else ''))
    return values


def read_spec(text: str) -> tuple[Any, str]:
    """``--hierarchy`` text -> (SPEC, source): inline JSON, a ``.json`` or a ``.py`` file."""
    path = Path(text).expanduser()
    stripped = text.lstrip()
    if stripped.startswith(('[', '{')):
        try:
            return json.loads(text), '--hierarchy (inline)'
        except json.JSONDecodeError as exc:
            raise ConfigError(f'--hierarchy: inline JSON cannot be parsed: {exc}') from None
    if not path.is_file():
        raise ConfigError(f'--hierarchy {text}: neither inline JSON nor an existing file')
    if path.suffix == '.py':
        try:
            namespace = runpy.run_path(str(path))
        except Exception as exc:  # the file is arbitrary Python
            raise ConfigError(f'--hierarchy {path}: {type(exc).__name__}: {exc}') from None
        for name in ('coarse_of_fine', 'hierarchy'):
            if name in namespace:
                return namespace[name], f'--hierarchy {path}'
        raise ConfigError(f'--hierarchy {path} defines neither coarse_of_fine nor hierarchy')
    try:
        return json.loads(path.read_text(encoding='utf-8')), f'--hierarchy {path}'
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f'--hierarchy {path}: cannot be read as JSON: {exc}') from None


def _plain(value: Any) -> Any:
    """MMEngine ``ConfigDict``/tuples -> plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def guard_options(cfg: Any) -> dict[str, Any]:
    """The config's guard-only ``epam_guard = dict(...)`` (empty when absent)."""
    options = cfg.get(GUARD_KEY) or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f'config key {GUARD_KEY} must be a dict, e.g. '
                          f'{GUARD_KEY} = dict(hierarchy=[...]), but got {type(options).__name__}')
    unknown = sorted(set(options) - {'hierarchy', 'label_api', 'contract'})
    if unknown:
        raise ConfigError(f'config key {GUARD_KEY} takes hierarchy, label_api and contract, '
                          f'but got {unknown}')
    return dict(options)


def num_classes_of(cfg: Any) -> int:
    """Fine classes the head predicts (``model.cls_head.num_classes``, NTU-60's by default)."""
    head = cfg.model.get('cls_head') or {}
    return int(head.get('num_classes', NTU60_CLASSES))


def needs_hierarchy(cfg: Any) -> bool:
    """Whether the model predicts coarse classes (its head declares ``num_coarse_classes``)."""
    head = cfg.model.get('cls_head') or {}
    return isinstance(head, Mapping) and head.get('num_coarse_classes') is not None


def hierarchy_given(cfg: Any, option: str | None = None) -> bool:
    """True when the user names one: ``--hierarchy``, the guard key or ``model.hierarchy``."""
    return bool(option) or guard_options(cfg).get('hierarchy') is not None or \
        cfg.model.get('hierarchy') is not None


def build_hierarchy(cfg: Any, option: str | None = None) -> Hierarchy | None:
    """The referee mapping from ``--hierarchy``, the guard key, ``model.hierarchy`` or NTU-60;
    None when none is given and the head predicts no coarse classes.

    Raises:
        ConfigError: one line naming the source and what is wrong with it.
    """
    num_classes = num_classes_of(cfg)
    if option:
        spec, source = read_spec(option)
    elif guard_options(cfg).get('hierarchy') is not None:
        spec, source = guard_options(cfg)['hierarchy'], f'config {GUARD_KEY}.hierarchy'
    elif cfg.model.get('hierarchy') is not None:
        spec, source = cfg.model.get('hierarchy'), 'config model.hierarchy'
    elif not needs_hierarchy(cfg):
        return None
    else:
        if num_classes != NTU60_CLASSES:
            raise ConfigError(
                f'the head has {num_classes} classes and no hierarchy is given, so the '
                f'NTU-60 default does not apply; pass --hierarchy or set {GUARD_KEY} = '
                'dict(hierarchy=[coarse class of each fine label, ...]) in the config')
        spec, source = {'groups': NTU60_GROUPS}, 'NTU-60 default (no hierarchy in the config)'
    return Hierarchy(tuple(_mapping(_plain(spec), num_classes, source)), source)
