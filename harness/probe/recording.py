"""Record who called what with which arguments, without editing the model.

Modules are observed through forward pre-hooks and forward hooks (both with
keyword arguments); the head's ``forward``/``loss``/``predict`` and the
recognizer's ``extract_feat`` are observed by instance-level wrappers around
the real bound methods; on exit each wrapped attribute is put back exactly as
it was (an instance-level method the model set itself survives). A call is
recorded *before* it runs, so a call that raises (the seed defect's
``TypeError``) is still evidence, together with a shallow copy of its arguments
(:func:`~epam_guard.probe.describe.as_passed`) that later mutation cannot change.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..contract.errors import one_line
from .describe import as_passed

#: Marks a wrapped method that had no instance-level attribute before.
_ABSENT = object()


@dataclass
class Call:
    """One observed call: where, which method, with what, giving what."""

    module: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    bound: dict[str, Any] | None
    output: Any = None
    error: str | None = None
    depth: int = 0
    #: The arguments by name as they were when the call started (see :meth:`named`).
    passed: dict[str, Any] | None = None
    #: The output as it was when the call returned.
    returned: Any = None

    def argument(self, name: str, position: int | None = None) -> Any:
        """An argument by name (from the bound signature) or by raw position."""
        if self.bound is not None and name in self.bound:
            return self.bound[name]
        if name in self.kwargs:
            return self.kwargs[name]
        if position is not None and position < len(self.args):
            return self.args[position]
        return None

    def named(self) -> dict[str, Any]:
        """Arguments by name (``args[i]`` where the signature gives none)."""
        if self.bound is not None:
            return {k: v for k, v in self.bound.items() if k != 'self'}
        return {**{f'args[{i}]': a for i, a in enumerate(self.args)}, **self.kwargs}

    def outline(self) -> str:
        """``module.method(a, b, c=None)``: argument names, and which ones were None."""
        names = ', '.join(f'{k}=None' if v is None else k for k, v in self.named().items())
        return f'{self.module}.{self.method}({names})'

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor argument with its name (``args[i]`` when unnamed)."""
        for name, value in self.named().items():
            if isinstance(value, torch.Tensor):
                yield name, value


def _bind(func: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """Arguments by parameter name; ``*args``/``**kwargs`` catch-alls are flattened.

    So ``gt=`` passed into a ``**kwargs`` still shows up as ``gt``, and the
    target given to ``BaseWeightedLoss.forward(*args)`` as ``args[1]``.
    """
    try:
        signature = inspect.signature(func)
        arguments = dict(signature.bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return None
    for name, param in signature.parameters.items():
        if name not in arguments:
            continue
        if param.kind is param.VAR_KEYWORD:
            arguments.update(arguments.pop(name))
        elif param.kind is param.VAR_POSITIONAL:
            arguments.update({f'{name}[{i}]': value
                              for i, value in enumerate(arguments.pop(name))})
    return arguments


def default_targets(model: nn.Module) -> dict[str, nn.Module]:
    """The modules worth recording: backbone and its parts, the neck, the head's losses."""
    targets: dict[str, nn.Module] = {}
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module):
        targets['backbone'] = backbone
        for name, child in backbone.named_children():
            targets[f'backbone.{name}'] = child
    neck = getattr(model, 'neck', None)  # MMAction2's optional part between the two
    if isinstance(neck, nn.Module):
        targets['neck'] = neck
    head = getattr(model, 'cls_head', None)
    if isinstance(head, nn.Module):
        for name, module in head.named_modules():
            if name and type(module).__name__.endswith('Loss'):
                targets[f'cls_head.{name}'] = module
    return targets


class CallRecorder:
    """Context manager that records calls into a model, in order.

    Args:
        model: the recognizer.
        modules: dotted name -> module to observe with hooks (default:
            :func:`default_targets`).
    """

    #: ``(dotted owner, method)`` pairs wrapped at instance level.
    METHODS = (('', 'extract_feat'), ('cls_head', 'forward'), ('cls_head', 'loss'),
               ('cls_head', 'predict'))

    def __init__(self, model: nn.Module, modules: dict[str, nn.Module] | None = None) -> None:
        self.model = model
        self.modules = default_targets(model) if modules is None else modules
        self.calls: list[Call] = []
        self._handles: list[Any] = []
        self._wrapped: list[tuple[Any, str, Any]] = []
        self._open: list[Call] = []

    # -------------------------------------------------------------- queries
    def of(self, module: str, method: str = 'forward') -> list[Call]:
        return [c for c in self.calls if c.module == module and c.method == method]

    def under(self, prefix: str) -> list[Call]:
        return [c for c in self.calls if c.module.startswith(prefix)]

    # -------------------------------------------------------------- recording
    def _start(self, module: str, method: str, func: Callable[..., Any],
               args: tuple, kwargs: dict) -> Call:
        call = Call(module, method, args, dict(kwargs), _bind(func, args, kwargs),
                    depth=len(self._open))
        call.passed = as_passed(call.named())
        self.calls.append(call)
        self._open.append(call)
        return call

    def _finish(self, call: Call, output: Any = None, error: BaseException | None = None) -> None:
        call.output = output
        call.returned = as_passed(output)
        if error is not None:
            call.error = one_line(error, location=False)
        if call in self._open:
            # Calls still open inside this one never returned: the exception went
            # through them (no forward hook fires on an exception).
            while self._open and self._open[-1] is not call:
                inner = self._open.pop()
                if inner.error is None:
                    inner.error = call.error
            self._open.pop()

    def unwind(self, error: BaseException) -> None:
        """Mark every call still open as ended by ``error`` (it went through them all)."""
        line = one_line(error, location=False)
        while self._open:
            call = self._open.pop()
            if call.error is None:
                call.error = line

    def _hook(self, name: str, module: nn.Module) -> None:
        def pre(mod: nn.Module, args: tuple, kwargs: dict) -> None:
            self._start(name, 'forward', mod.forward, args, kwargs)

        def post(mod: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            for call in reversed(self._open):
                if call.module == name:
                    self._finish(call, output)
                    break

        self._handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        self._handles.append(module.register_forward_hook(post, with_kwargs=True))

    def _wrap(self, owner_name: str, method: str) -> None:
        owner = self.model.get_submodule(owner_name) if owner_name else self.model
        original = getattr(owner, method, None)
        if original is None:
            return
        label = owner_name or 'recognizer'

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self._start(label, method, original, args, kwargs)
            try:
                output = original(*args, **kwargs)
            except BaseException as exc:
                self._finish(call, error=exc)
                raise
            self._finish(call, output)
            return output

        # An instance attribute shadows the class's method for `self.x()` and
        # for `module(...)` alike. What the instance held before (its own
        # attribute, or nothing) is remembered and put back on exit.
        previous = vars(owner).get(method, _ABSENT)
        setattr(owner, method, wrapper)
        self._wrapped.append((owner, method, previous))

    def __enter__(self) -> CallRecorder:
        try:
            for owner, method in self.METHODS:
                if not owner or _has_submodule(self.model, owner):
                    self._wrap(owner, method)
            for name, module in self.modules.items():
                self._hook(name, module)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        for owner, method, previous in reversed(self._wrapped):
            if previous is _ABSENT:
                vars(owner).pop(method, None)
            else:
                setattr(owner, method, previous)
        self._handles.clear()
        self._wrapped.clear()


def _has_submodule(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def record(model: nn.Module, run: Callable[[], Any]) -> tuple[CallRecorder, Any, str | None]:
    """Run ``run()`` under a recorder; returns (recorder, result, error line or None)."""
    with CallRecorder(model) as recorder:
        try:
            result = run()
        except Exception as exc:  # the failure itself is evidence
            recorder.unwind(exc)
            return recorder, None, one_line(exc, location=False)
    return recorder, result, None
