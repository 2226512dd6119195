"""Describe values for people and for snapshots: shapes, dtypes, keys, label values.

The one place that formats tensors and data samples:

- :func:`describe`: JSON-able structure (snapshots, check details), never raw floats;
- :func:`short`: one compact line of structure, ``(2, 432, 4, 2, 2) float32``;
- :func:`values`: the values of a small integer tensor with its dtype and device,
  ``[3, 7] (int64, cpu)`` (labels and targets in findings);
- :func:`as_passed`: a shallow copy taken when a call happens, so a value can be
  shown as it was passed even after the callee or a later call mutated it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

MAX_ITEMS = 8
#: Integer tensors up to this size are copied by :func:`as_passed` (labels, targets).
MAX_COPIED = 256
#: How many values :func:`values` shows before ``... N more``.
MAX_VALUES = 8
#: Samples whose labels :func:`samples_line` shows before ``... N more``.
MAX_SAMPLES = 16
SAMPLE_TYPE = 'ActionDataSample'


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``float32``."""
    return str(dtype).replace('torch.', '')


def is_data_sample(value: Any) -> bool:
    """True for MMEngine data elements (``ActionDataSample``, ``LabelData``), duck-typed."""
    return (not isinstance(value, type) and callable(getattr(value, 'keys', None))
            and callable(getattr(value, 'metainfo_keys', None)))


@dataclass(frozen=True)
class SampleView:
    """A data sample as it was at one moment: its type, field names and label values.

    ``labels`` maps a label field (``gt_label``, ``gt_labels.item``) to its values.
    """

    kind: str
    fields: tuple[str, ...]
    labels: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __str__(self) -> str:
        shown = dict(self.labels)
        parts = [f'{name}={_ints(shown[name])}' for name in shown]
        parts += [name for name in self.fields if name not in {k.split('.')[0] for k in shown}]
        return f'{self.kind}({", ".join(parts)})'


def _ints(items: tuple[int, ...]) -> str:
    return str(items[0]) if len(items) == 1 else '[' + ', '.join(map(str, items)) + ']'


def _label_values(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor) and not value.is_floating_point() \
            and value.numel() <= MAX_COPIED and value.device.type != 'meta':
        return tuple(int(v) for v in value.detach().flatten().tolist())
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    return None


def sample_view(sample: Any) -> SampleView:
    """The :class:`SampleView` of a data sample now (label fields with their values)."""
    fields = tuple(sorted(sample.keys()))
    labels: list[tuple[str, tuple[int, ...]]] = []
    for name in fields:
        if 'label' not in name:
            continue
        value = sample.get(name)
        if is_data_sample(value):  # MMAction2 1.0/1.1: gt_labels is a LabelData with .item
            for inner in sorted(value.keys()):
                found = _label_values(value.get(inner))
                if found is not None:
                    labels.append((f'{name}.{inner}', found))
            continue
        found = _label_values(value)
        if found is not None:
            labels.append((name, found))
    return SampleView(type(sample).__name__, fields, tuple(labels))


def as_passed(value: Any, depth: int = 0) -> Any:
    """A shallow copy of ``value`` that later mutation of the original cannot change.

    Containers are rebuilt, data samples become :class:`SampleView`, small
    integer tensors are cloned; other tensors stay shared (only their shape,
    dtype and device are ever shown). Cheap enough to take on every recorded call.
    """
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() and value.numel() <= MAX_COPIED:
            return value.detach().clone()
        return value
    if depth > 3:
        return value
    if is_data_sample(value):
        return sample_view(value)
    if isinstance(value, dict):
        return {key: as_passed(item, depth + 1) for key, item in value.items()}
    if isinstance(value, tuple) and not hasattr(value, '_fields'):
        return tuple(as_passed(item, depth + 1) for item in value)
    if isinstance(value, list):
        return [as_passed(item, depth + 1) for item in value]
    return value


def _samples(value: Any) -> bool:
    return bool(value) and all(isinstance(v, SampleView) or type(v).__name__ == SAMPLE_TYPE
                               for v in value)


def describe(value: Any, depth: int = 0) -> Any:
    """A JSON-able description of ``value``'s structure.

    Tensors become ``{'shape': [...], 'dtype': 'float32'}``; containers are
    described element-wise (long lists are capped); data samples list their
    fields; everything else its type name.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, torch.Tensor):
        return {'shape': list(value.shape), 'dtype': dtype_name(value.dtype)}
    if isinstance(value, SampleView):
        return f'{value.kind}({", ".join(value.fields)})'
    if depth > 4:
        return type(value).__name__
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if _samples(value):
            return f'{len(value)} x {describe(value[0], depth + 1)}'
        items = [describe(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f'... {len(value) - MAX_ITEMS} more')
        return items
    if type(value).__name__ == SAMPLE_TYPE:
        return f'{SAMPLE_TYPE}({", ".join(sorted(value.keys()))})'
    return type(value).__name__


def values(tensor: Any, limit: int = MAX_VALUES) -> str:
    """Values of a small integer tensor, capped at ``limit``, with dtype and device:
    ``[3, 7] (int64, cpu)``; ``None`` for None and the type name for non-tensors."""
    if not isinstance(tensor, torch.Tensor):
        return repr(tensor) if tensor is None else type(tensor).__name__
    if tensor.device.type == 'meta':  # shapes without values
        return f'{tuple(tensor.shape)} {dtype_name(tensor.dtype)} (meta, no values)'
    flat = tensor.detach().flatten().tolist()
    head = ', '.join(str(v) for v in flat[:limit])
    more = f', ... {len(flat) - limit} more' if len(flat) > limit else ''
    return f'[{head}{more}] ({dtype_name(tensor.dtype)}, {tensor.device.type})'


def samples_line(samples: list[Any] | tuple[Any, ...]) -> str:
    """``2 x ActionDataSample(gt_label, pred_label) gt_label: 3, 7; pred_label: 3, 1``.

    Field names once, then each label field's values sample by sample.
    """
    views = [s if isinstance(s, SampleView) else sample_view(s) for s in samples]
    fields = sorted({field for view in views for field in view.fields})
    labels = []
    for name in dict.fromkeys(name for view in views for name, _ in view.labels):
        per_sample = [_ints(dict(view.labels)[name]) if name in dict(view.labels) else '-'
                      for view in views]
        more = f', ... {len(per_sample) - MAX_SAMPLES} more' \
            if len(per_sample) > MAX_SAMPLES else ''
        labels.append(f'{name}: {", ".join(per_sample[:MAX_SAMPLES])}{more}')
    return f'{len(views)} x {views[0].kind}({", ".join(fields)})' + \
        (f' {"; ".join(labels)}' if labels else '')


def short(value: Any) -> str:
    """One compact line of structure: ``(2, 432, 4, 2, 2) float32``, ``tuple[2](...)``."""
    if isinstance(value, torch.Tensor):
        return f'{tuple(value.shape)} {dtype_name(value.dtype)}'
    if isinstance(value, SampleView):
        return str(value)
    if isinstance(value, (list, tuple)) and _samples(value):
        return samples_line(value)
    if isinstance(value, (list, tuple)) and len(value) <= MAX_ITEMS:
        inner = ', '.join(short(v) for v in value)
        return f'{type(value).__name__}[{len(value)}]({inner})'
    if isinstance(value, dict):
        return '{' + ', '.join(f'{k}: {short(v)}' for k, v in value.items()) + '}'
    described = describe(value)
    return described if isinstance(described, str) else repr(described)
