"""Find where a NaN or Inf first appeared: in the inputs, or in which module.

Forward hooks on every module record the first one whose output holds a
non-finite value. Children finish before their parents, so with finite
inputs the first module to finish with a NaN/Inf is the one that made it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn


def _non_finite(value: Any) -> str | None:
    """``'NaN'``/``'Inf'`` if any floating tensor inside ``value`` holds one."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not torch.isfinite(value).all():
            return 'NaN' if torch.isnan(value).any() else 'Inf'
        return None
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _non_finite(item)
            if found:
                return found
    return None


def locate_non_finite(model: nn.Module, inputs: dict[str, Any],
                      run: Callable[[], Any]) -> str | None:
    """Say where the first NaN/Inf of ``run()`` came from, or None if none appeared.

    Args:
        model: the recognizer ``run`` calls.
        inputs: the preprocessed inputs ``run`` feeds it (checked first).
        run: one forward call of the model.
    """
    for key, value in inputs.items():
        kind = _non_finite(value)
        if kind:
            return (f"inputs[{key!r}] already holds {kind} after the data preprocessor "
                    '(check its mean/std and the pipeline)')
    first: list[str] = []

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            if not first:
                kind = _non_finite(output)
                if kind:
                    first.append(f'{name} ({type(module).__name__}) is the first module to '
                                 f'output {kind}')
        return record

    handles = [module.register_forward_hook(hook(name))
               for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            run()
    except Exception:  # the location found so far is still the answer
        pass
    finally:
        for handle in handles:
            handle.remove()
    return first[0] if first else None
