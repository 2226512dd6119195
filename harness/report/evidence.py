"""A check's evidence on the terminal (``epam-guard check -v``): its details, a few lines each.

A passing check's verdict says what held; its ``details`` say on what
evidence (shapes, calls, targets, losses before and after, counts). ``-v``
shows them compactly: one line per entry (nested entries one level down),
tensors described as ``dtype(shape)``, each line and the number of lines
bounded; ``--json`` keeps everything.
"""
from __future__ import annotations

from typing import Any

#: Entries shown elsewhere (a failure's stack and logs) or only useful in the JSON.
HIDDEN = frozenset({'full_text', 'stack', 'traceback', 'log_tail', 'console_tail'})
#: Lines of evidence per check; the rest is in ``--json``.
MAX_LINES = 14
#: Characters per line of evidence.
WIDTH = 200


def compact(value: Any, budget: int = WIDTH) -> str:
    """``value`` in few characters: ``float32(2, 432, 4)`` for a described tensor,
    4 significant digits for a float, containers cut with ``...``."""
    if _tensor(value):
        return f'{value["dtype"]}{tuple(value["shape"])}'
    if isinstance(value, float):
        return f'{value:.4g}'
    if isinstance(value, (list, tuple)):
        opening, closing = '[', ']'
        items = (compact(item, budget) for item in value)
    elif isinstance(value, dict):
        opening, closing = '{', '}'
        items = (f'{key}: {compact(item, budget)}' for key, item in value.items())
    else:
        text = str(value)
        return text if len(text) <= budget else text[:budget - 3] + '...'
    shown: list[str] = []
    used = 2
    for item in items:
        if used + len(item) + 2 > budget:
            shown.append('...')
            break
        shown.append(item)
        used += len(item) + 2
    return opening + ', '.join(shown) + closing


def _tensor(value: Any) -> bool:
    """A tensor as :func:`epam_guard.probe.describe.describe` records it."""
    return isinstance(value, dict) and set(value) == {'shape', 'dtype'}


def _spelled_out(value: Any) -> bool:
    """A dict of containers other than described tensors: shown one line per entry."""
    return isinstance(value, dict) and bool(value) and not _tensor(value) and all(
        isinstance(item, (dict, list)) and not _tensor(item) for item in value.values())


def _lines(key: str, value: Any, depth: int) -> list[str]:
    if depth and _spelled_out(value):
        return [line for sub, item in value.items() for line in _lines(f'{key}.{sub}', item,
                                                                       depth - 1)]
    return [f'{key}: {compact(value)}']


def evidence_lines(details: dict[str, Any], depth: int = 2) -> list[str]:
    """``key: value`` lines for a check's details (``depth`` levels of nesting spelled out)."""
    lines = [line for key, value in details.items() if key not in HIDDEN
             for line in _lines(key, value, depth)]
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES - 1] + [f'... {len(lines) - MAX_LINES + 1} more (--json)']
    return [line if len(line) <= WIDTH else line[:WIDTH - 3] + '...' for line in lines]
