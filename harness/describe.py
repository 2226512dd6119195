"""Describe values as JSON-able structure: shapes, dtypes, keys, never raw floats."""
from __future__ import annotations

from typing import Any

import torch

MAX_ITEMS = 8


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace('torch.', '')


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
    if depth > 4:
        return type(value).__name__
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(type(v).__name__ == 'ActionDataSample' for v in value):
            return f'{len(value)} x {describe(value[0], depth + 1)}'
        items = [describe(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f'... {len(value) - MAX_ITEMS} more')
        return items
    if type(value).__name__ == 'ActionDataSample':
        return f'ActionDataSample({", ".join(sorted(value.keys()))})'
    return type(value).__name__


def short(value: Any) -> str:
    """One compact line for a described value: ``(2, 432, 4, 2, 2) float32``."""
    if isinstance(value, torch.Tensor):
        return f'{tuple(value.shape)} {dtype_name(value.dtype)}'
    if isinstance(value, (list, tuple)) and len(value) <= MAX_ITEMS and not (
            value and type(value[0]).__name__ == 'ActionDataSample'):
        inner = ', '.join(short(v) for v in value)
        return f'{type(value).__name__}[{len(value)}]({inner})'
    if isinstance(value, dict):
        return '{' + ', '.join(f'{k}: {short(v)}' for k, v in value.items()) + '}'
    described = describe(value)
    return described if isinstance(described, str) else repr(described)
