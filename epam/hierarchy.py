"""The fine-to-coarse label hierarchy: the one definition every part reads.

EPAM-Net classifies each clip twice, into fine classes (the 60 NTU actions) and
into coarse groups of them (8 for NTU-60). The groups are given as inclusive
label ranges, e.g. ``dict(num_classes=60, groups=[[0, 9], [10, 19], ...])``,
which must partition ``0 .. num_classes - 1``.

:class:`LabelHierarchy` is built once, by the recognizer, from its
``hierarchy=`` config; the recognizer uses it to make ``gt_coarse`` and hands
the same object to the head, whose tree loss reads its membership matrix.
Nothing else defines a mapping (CONTRACT.md section 5).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    'LabelHierarchy', 'LabelRangeError', 'NTU60_HIERARCHY', 'labels_from_samples'
]

# NTU-60 fine classes -> 8 coarse groups (inclusive label ranges). Tuples, so
# the module-level default can never be mutated by a caller.
NTU60_HIERARCHY: Mapping[str, Any] = {
    'num_classes': 60,
    'groups': ((0, 9), (10, 19), (20, 29), (30, 39), (40, 44), (45, 49), (50, 54),
               (55, 59)),
}

_MAX_SHOWN = 8  # offending values listed in an error message, at most


class LabelRangeError(ValueError):
    """A label lies outside ``[0, num_classes)``: rejected, never clamped or wrapped."""


def _format_values(values: Sequence[int]) -> str:
    """``[a, b, c]`` with at most ``_MAX_SHOWN`` entries, then ``... (+k more)``."""
    shown = ', '.join(str(v) for v in values[:_MAX_SHOWN])
    more = len(values) - _MAX_SHOWN
    return f'[{shown}{f", ... (+{more} more)" if more > 0 else ""}]'


def _check_range(labels: Tensor, bound: int, what: str, bound_name: str) -> None:
    """Integer tensor with every value in ``[0, bound)``, or a clear error."""
    if not isinstance(labels, Tensor):
        raise TypeError(f'{what} must be an integer Tensor, but got {type(labels).__name__}')
    if labels.dtype.is_floating_point or labels.dtype.is_complex \
            or labels.dtype == torch.bool:
        raise TypeError(
            f'{what} must be an integer (int64) Tensor of class indices, but got dtype '
            f'{labels.dtype}')
    if labels.numel() == 0:
        return
    bad = (labels < 0) | (labels >= bound)
    if bool(bad.any()):
        offending = torch.unique(labels[bad]).tolist()
        raise LabelRangeError(
            f'{what} must lie in [0, {bound}) ({bound_name}={bound}), but '
            f'{int(bad.sum())} of {labels.numel()} are outside it: '
            f'{_format_values(offending)}. Check the annotation file and that labels are '
            '0-based; they are never clamped or wrapped.')


class LabelHierarchy:
    """A partition of ``num_classes`` fine labels into coarse groups.

    Args:
        num_classes (int): Number of fine classes; labels are ``0 .. num_classes - 1``.
        groups (Sequence[Sequence[int]]): One inclusive ``[lo, hi]`` fine-label
            range per coarse class, in coarse-class order. Together they must
            cover every fine label exactly once.

    Attributes:
        num_classes (int): Number of fine classes.
        num_coarse_classes (int): Number of coarse classes (groups).
        groups (tuple[tuple[int, int], ...]): The validated ranges.
        fine_to_coarse (Tensor): ``(num_classes,)`` int64, coarse class of each fine class.
        membership (Tensor): ``(num_classes, num_coarse_classes)`` float32,
            ``membership[f, c] == 1`` iff fine class ``f`` belongs to group ``c``.

    Raises:
        ValueError: if the groups are malformed or do not partition the labels.
    """

    def __init__(self, num_classes: int, groups: Sequence[Sequence[int]]) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or num_classes < 1:
            raise ValueError(
                f'num_classes must be a positive int, but got {num_classes!r}')
        self.num_classes = num_classes
        self.groups = self._check_groups(num_classes, groups)
        self.num_coarse_classes = len(self.groups)
        fine_to_coarse = torch.empty(num_classes, dtype=torch.long)
        for coarse, (lo, hi) in enumerate(self.groups):
            fine_to_coarse[lo:hi + 1] = coarse
        self.fine_to_coarse = fine_to_coarse
        self.membership = torch.nn.functional.one_hot(
            fine_to_coarse, self.num_coarse_classes).float()
        self._device_cache: dict[torch.device, Tensor] = {}

    @staticmethod
    def _check_groups(num_classes: int,
                      groups: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
        """Validate ``groups`` as a partition of ``0 .. num_classes - 1``."""
        if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) \
                or len(groups) == 0:
            raise ValueError(
                'groups must be a non-empty list of inclusive [lo, hi] label ranges, '
                f'but got {groups!r}')
        checked = []
        for index, group in enumerate(groups):
            if (isinstance(group, (str, bytes)) or not isinstance(group, Sequence)
                    or len(group) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool)
                               for v in group)):
                raise ValueError(
                    f'group {index} must be an inclusive [lo, hi] pair of ints, '
                    f'but got {group!r}')
            lo, hi = group
            if not 0 <= lo <= hi < num_classes:
                raise ValueError(
                    f'group {index} = [{lo}, {hi}] must satisfy '
                    f'0 <= lo <= hi <= {num_classes - 1} (num_classes={num_classes})')
            checked.append((lo, hi))
        owner: dict[int, int] = {}
        for index, (lo, hi) in enumerate(checked):
            for label in range(lo, hi + 1):
                if label in owner:
                    raise ValueError(
                        f'groups overlap: fine label {label} is in group '
                        f'{owner[label]} {list(checked[owner[label]])} and in group '
                        f'{index} {[lo, hi]}; each label must be in exactly one group')
                owner[label] = index
        uncovered = [label for label in range(num_classes) if label not in owner]
        if uncovered:
            raise ValueError(
                f'groups must cover every fine label 0..{num_classes - 1}, but '
                f'{len(uncovered)} are in no group: {_format_values(uncovered)}')
        return tuple(checked)

    @classmethod
    def build(cls, cfg: None | Mapping[str, Any] | LabelHierarchy) -> LabelHierarchy:
        """A hierarchy from a config dict, an existing one, or NTU-60's when None.

        The config is only read, never modified.
        """
        if isinstance(cfg, LabelHierarchy):
            return cfg
        if cfg is None:
            cfg = NTU60_HIERARCHY
        if not isinstance(cfg, Mapping):
            raise TypeError(
                'hierarchy must be a dict(num_classes=..., groups=[[lo, hi], ...]), '
                f'a LabelHierarchy or None, but got {type(cfg).__name__}')
        unknown = sorted(set(cfg) - {'num_classes', 'groups'})
        if unknown:
            raise ValueError(
                f'hierarchy config takes the keys num_classes and groups, but got '
                f'unknown keys {unknown}')
        if 'num_classes' not in cfg or 'groups' not in cfg:
            raise ValueError(
                'hierarchy config needs both num_classes and groups, but got keys '
                f'{sorted(cfg)}')
        return cls(num_classes=cfg['num_classes'], groups=cfg['groups'])

    def to_config(self) -> dict[str, Any]:
        """The config dict this hierarchy was built from (fresh lists)."""
        return dict(num_classes=self.num_classes,
                    groups=[[lo, hi] for lo, hi in self.groups])

    def validate(self, labels: Tensor) -> None:
        """Reject fine labels that are not integers in ``[0, num_classes)``.

        Raises:
            TypeError: if ``labels`` is not an integer tensor.
            LabelRangeError: naming the offending values and the allowed range.
        """
        _check_range(labels, self.num_classes, 'labels', 'num_classes')

    def validate_coarse(self, labels: Tensor) -> None:
        """Reject coarse labels that are not integers in ``[0, num_coarse_classes)``."""
        _check_range(labels, self.num_coarse_classes, 'coarse labels', 'num_coarse_classes')

    def __call__(self, fine: Tensor) -> Tensor:
        """Map fine labels to coarse labels, on ``fine``'s device (int64, same shape).

        Raises:
            LabelRangeError: if a fine label is outside ``[0, num_classes)``.
        """
        self.validate(fine)
        table = self._device_cache.get(fine.device)
        if table is None:
            table = self.fine_to_coarse.to(fine.device)
            self._device_cache[fine.device] = table
        return table[fine.long()]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelHierarchy):
            return NotImplemented
        return self.num_classes == other.num_classes and self.groups == other.groups

    __hash__ = None  # type: ignore[assignment]  # mutable caches; equality by value

    def __repr__(self) -> str:
        groups = ', '.join(f'[{lo}, {hi}]' for lo, hi in self.groups)
        return f'{type(self).__name__}(num_classes={self.num_classes}, groups=[{groups}])'


def labels_from_samples(data_samples: Sequence[Any],
                        device: torch.device | None = None) -> Tensor:
    """The fine label of each data sample, as an ``(N,)`` int64 tensor on ``device``.

    Reads ``gt_label`` (MMAction2 1.2) and falls back to ``gt_labels.item``
    (1.0/1.1 and their forks). Exactly one label per sample is required.
    """
    labels = []
    for index, sample in enumerate(data_samples):
        label = getattr(sample, 'gt_label', None)
        if label is None:
            label = getattr(getattr(sample, 'gt_labels', None), 'item', None)
        if label is None:
            raise ValueError(
                f'data sample {index} has no label: expected gt_label (MMAction2 1.2) '
                'or gt_labels.item (MMAction2 1.0/1.1)')
        label = torch.as_tensor(label)
        if label.numel() != 1:
            raise ValueError(
                f'data sample {index} has a label of shape {tuple(label.shape)}; EPAM '
                'needs exactly one class index per sample (no multi-label or soft '
                'labels)')
        if label.dtype.is_floating_point or label.dtype == torch.bool:
            raise TypeError(
                f'data sample {index} has a {label.dtype} label; labels must be '
                'integer class indices')
        labels.append(label.reshape(1))
    if not labels:
        raise ValueError('data_samples is empty: there are no labels to read')
    return torch.cat(labels).to(device=device, dtype=torch.long)
