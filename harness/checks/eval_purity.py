"""Check ``eval_purity``: inference changes nothing, and no call edits its inputs.

CONTRACT §6 (``predict`` leaves parameters, buffers and prototype memories
as they were) and §1 (the recognizer flattens ``(N, V)`` without rewriting
the caller's ``inputs`` dict, which MMAction2's ``MMRecognizer3D`` does: a
failure in the ``epam`` profile, a warning in ``mmaction2``).
"""
from __future__ import annotations

from typing import Any

import torch

from ..contract.profiles import Rule
from ..model.batch import make_batch, preprocess
from ..model.context import GuardContext
from ..model.diagnosis import cuda_message, hard_wired_cuda
from ..model.passes import value_context
from ..probe import state
from ..report.result import CheckResult, Finding
from .common import finish


def _by_key(inputs: Any) -> dict[str, Any]:
    """The preprocessed inputs by key: a multimodal dict as it is, one tensor as ``inputs``."""
    return inputs if isinstance(inputs, dict) else {'inputs': inputs}


def _fingerprint(inputs: Any) -> dict[str, tuple[int, tuple[int, ...], torch.Tensor]]:
    return {key: (id(value), tuple(value.shape), value.detach().clone())
            for key, value in _by_key(inputs).items()}


def _mutations(inputs: Any, before: dict[str, Any]) -> list[str]:
    inputs = _by_key(inputs)
    changes = []
    if set(inputs) != set(before):
        changes.append(f'keys {sorted(before)} became {sorted(inputs)}')
    for key, (ident, shape, values) in before.items():
        value = inputs.get(key)
        if value is None:
            continue
        if id(value) != ident:
            changes.append(f'{key!r} was replaced by a tensor of shape {tuple(value.shape)} '
                           f'(was {shape})')
        elif tuple(value.shape) != shape or not torch.equal(value, values):
            changes.append(f'{key!r} was changed in place')
    return changes


def check(ctx: GuardContext) -> CheckResult:
    """Predict leaves parameters and buffers alone; no mode rewrites the caller's inputs."""
    ctx = value_context(ctx)  # what inference changes does not depend on the crop
    model, findings = ctx.model, []
    warnings: list[str] = []
    compared: dict[str, Any] = {}  # the evidence: what was compared after each call
    for mode in ('predict', 'tensor', 'loss'):
        training = mode == 'loss'
        # Two views are enough to make a recognizer fold (N, V); more only cost time.
        views = 1 if training else min(ctx.recipe.views, 2)
        model.train(training)
        data = preprocess(model, make_batch(ctx.recipe, views=views), training)
        before, saved = _fingerprint(data['inputs']), state.copy_tensors(model)
        try:
            with torch.set_grad_enabled(training):
                model(**data, mode=mode)
        except Exception as exc:
            if not hard_wired_cuda(exc):
                raise  # the engine reports it as this check's error
            findings.append(Finding(Rule.STATE, cuda_message(exc, f'{mode} mode')))
            continue
        compared[mode] = {'views': views, 'inputs': sorted(before),
                          **({} if training else {'parameters_and_buffers': len(saved)})}
        for change in _mutations(data['inputs'], before):
            found = Finding(Rule.INPUTS, f'{mode} mode: the caller\'s inputs {change}')
            if ctx.profile.inputs_rewrite_fails:
                findings.append(found)
            else:  # MMAction2's own MMRecognizer3D does it and trains: said, not failed
                warnings.append(f'{found} (the {ctx.profile.name} contract allows it; a second '
                                'use of the same batch sees the rewritten inputs)')
        if not training:
            changed = state.changed(model, saved)
            if changed:
                findings.append(Finding(Rule.STATE,
                    f'{mode} mode changed {len(changed)} parameters or '
                    f'buffers: {changed[:6]}'))
    inputs = ('the caller\'s inputs were rewritten, which the '
              f'{ctx.profile.name} contract allows (see the warnings)' if warnings
              else 'no call rewrites the caller\'s inputs')
    return finish('eval_purity', findings,
                  f'predict and tensor calls change no parameter or buffer; {inputs}',
                  {'compared': compared}, warnings=warnings)
