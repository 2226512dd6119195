"""Check ``first_pass``: what the first loss and predict passes do to a fresh model's state.

A freshly built model (the config's, the same seed) goes through one
training-mode ``loss`` pass and one eval-mode ``predict`` pass, without
gradients and before any optimizer step. Two things are read from that one
pair of passes, because both are state the forward pass itself makes or
writes (what the optimizer does is ``train_step``'s, what inference must not
do is ``eval_purity``'s):

- CONTRACT §6: the parameters and buffers, by name and shape, are the ones
  the model was built with. One that appears (a layer made lazily in the
  first ``forward``), disappears or changes shape (``nn.LazyLinear``) is
  missing from the optimizer built before it (it never trains) and from a
  fresh model's ``state_dict`` (a checkpoint does not load back).
- CONTRACT §5: state indexed by class (a parameter or buffer with
  ``num_classes`` or ``num_coarse_classes`` rows: prototype memories, class
  centres, EMA banks) that the loss pass changes changes at exactly the rows
  of the batch's labels (fine state) or of ``hierarchy(labels)`` (coarse
  state), the guard's own hierarchy; the predict pass changes none of it.
  The batch's labels are chosen so that neither set can be mistaken for the
  other, for the first rows, or for the samples' positions.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ..contract.profiles import Rule
from ..contract.referee import Hierarchy
from ..model.batch import make_batch, preprocess
from ..model.context import GuardContext
from ..model.diagnosis import cuda_message, hard_wired_cuda
from ..model.passes import value_context
from ..probe import state
from ..report.result import CheckResult, Finding
from .common import finish
from .train_step import group_by_module

Signature = dict[str, tuple[str, 'tuple[int, ...] | None']]
#: Samples per coarse class in the batch: two, so coarse rows are fewer than fine rows.
PER_GROUP = 2
#: Coarse classes in the batch: two, far apart, so no prefix of the rows matches them.
GROUPS = 2
#: Rows listed in a finding before '... N more'.
ROWS_SHOWN = 12
FIX = ('create it in __init__ (its size from the config), so that the optimizer trains it and '
       "a checkpoint loads into a freshly built model")


def signature(model: nn.Module) -> Signature:
    """``name -> ('parameter' | 'buffer', shape)``; shape None while uninitialised (lazy)."""
    def shape(tensor: torch.Tensor) -> tuple[int, ...] | None:
        if is_lazy(tensor):
            return None
        return tuple(tensor.shape)

    found: Signature = {name: ('parameter', shape(p)) for name, p in model.named_parameters()}
    found.update({name: ('buffer', shape(b)) for name, b in model.named_buffers()})
    return found


def _shown(shape: tuple[int, ...] | None) -> str:
    return 'uninitialised' if shape is None else str(shape)


def signature_findings(built: Signature, now: Signature, mode: str) -> list[Finding]:
    """Parameters and buffers that appeared, disappeared or changed shape in ``mode``'s pass,
    one finding per module."""
    appeared = [name for name in now if name not in built]
    gone = [name for name in built if name not in now]
    reshaped = [name for name in now if name in built and now[name][1] != built[name][1]]
    findings = []
    for module, leaves in group_by_module(appeared).items():
        named = [leaf if module == '(model)' else f'{module}.{leaf}' for leaf in leaves]
        items = ', '.join(f'{leaf} ({now[name][0]} {_shown(now[name][1])})'
                          for leaf, name in zip(leaves, named))
        findings.append(Finding(Rule.STATE,
            f'{module} gained {items} in the first {mode} pass: it is made in forward(), after '
            f'the optimizer took the parameters; {FIX}'))
    for module, leaves in group_by_module(gone).items():
        findings.append(Finding(Rule.STATE,
            f'{module} lost {", ".join(leaves)} in the first {mode} pass: forward() deletes or '
            f'renames state the model was built with; {FIX}'))
    for name in reshaped:
        module = name.rpartition('.')[0] or '(model)'
        findings.append(Finding(Rule.STATE,
            f'{name} ({now[name][0]}) changed shape from {_shown(built[name][1])} to '
            f'{_shown(now[name][1])} in the first {mode} pass (a lazily initialised layer in '
            f'{module}); {FIX}'))
    return findings


def coincidence_free_labels(hierarchy: Hierarchy) -> list[int]:
    """Fine labels whose rows cannot be mistaken for their coarse rows, or vice versa.

    Every label is at least ``num_coarse_classes`` (so the fine rows and the
    coarse rows never overlap), two coarse classes with two labels each, from
    groups far apart (so the coarse rows are fewer than the fine ones and no
    run ``0..k`` or sample position matches either set), interleaved so that
    samples of one group are not neighbours. Where the hierarchy is too small
    for that, the labels that come closest.
    """
    coarse = hierarchy.num_coarse_classes
    members: dict[int, list[int]] = {}
    for fine, group in enumerate(hierarchy.coarse_of_fine):
        if fine >= coarse:
            members.setdefault(group, []).append(fine)
    eligible = [group for group in sorted(members) if len(members[group]) >= PER_GROUP]
    if len(eligible) >= GROUPS:
        chosen = [eligible[len(eligible) > GROUPS], eligible[-1]]
        picks = [[members[g][0], members[g][-1]] for g in chosen]
        return [label for pair in zip(*picks) for label in pair]
    return sorted({label for group in members.values() for label in group})[:GROUPS * PER_GROUP] \
        or list(range(min(hierarchy.num_classes, GROUPS * PER_GROUP)))


def spread_labels(num_classes: int, count: int = GROUPS * PER_GROUP) -> list[int]:
    """Distinct fine labels for a model without a hierarchy: none of them a sample's
    position (``0..count-1``) or a run from 0, where the classes allow it."""
    if num_classes < 2 * count:
        return list(range(min(num_classes, count)))
    return [count + (i * (num_classes - count)) // count for i in range(count)]


def class_state(model: nn.Module, rows: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Parameters and buffers of the head with one row per class (``rows``), by name.

    Per-class state lives in the head (``cls_head``; the whole model when there
    is none). Normalisation layers' running statistics have one row per channel,
    never per class, and change at every row in training: they are left out, so
    a layer that happens to have 8 or 60 channels is not taken for class state.
    """
    head = getattr(model, 'cls_head', None)
    owner, prefix = (head, 'cls_head.') if isinstance(head, nn.Module) else (model, '')
    norms = tuple(f'{name}.' for name, module in owner.named_modules()
                  if isinstance(module, nn.modules.batchnorm._NormBase) and name)
    return {f'{prefix}{name}': tensor for name, tensor in state.tensors(owner).items()
            if tensor.dim() >= 1 and not is_lazy(tensor)
            and tensor.shape[0] in rows and not name.startswith(norms)}


def changed_rows(now: torch.Tensor, before: torch.Tensor) -> list[int]:
    """Rows whose values differ (NaN equals NaN: an unwritten NaN row is unchanged)."""
    now, before = now.detach(), before.to(now.device)
    same = (now == before) | (now.isnan() & before.isnan()) if now.is_floating_point() \
        else now == before
    return [int(row) for row in torch.nonzero(~same.reshape(now.shape[0], -1).all(dim=1))
            .flatten()]


def row_findings(name: str, rows: int, changed: list[int], labels: list[int],
                 hierarchy: Hierarchy | None, num_classes: int | None = None) -> list[Finding]:
    """A class-indexed tensor the loss pass changed: at the rows of its own classes only?

    A tensor with ``num_classes`` rows (the hierarchy's fine classes unless given)
    is fine state (the rows of the labels), one with ``num_coarse_classes`` rows
    coarse state (the rows of hierarchy(labels), where the profile has a
    hierarchy); where both counts are equal either set is accepted.
    """
    fine = ("the batch's labels", 'fine', set(labels))
    coarse = ('hierarchy(labels)', 'coarse', set() if hierarchy is None
              else set(hierarchy(torch.tensor(labels)).tolist()))
    if num_classes is None:  # the hierarchy's fine classes (there is one, or no state)
        num_classes = hierarchy.num_classes if hierarchy is not None else rows
    levels = [(num_classes, fine)] + ([] if hierarchy is None
                                      else [(hierarchy.num_coarse_classes, coarse)])
    kinds = [kind for count, kind in levels if count == rows]
    if any(set(changed) == wanted for _, _, wanted in kinds):
        return []
    what, level, wanted = kinds[0]
    lookalikes = {fine[0]: fine[2], coarse[0]: coarse[2],
                  "the samples' positions": set(range(len(labels))),
                  'every class': set(range(rows))}
    lookalike = next((f'; they are the rows of {key}' for key, rows_of in lookalikes.items()
                      if key != what and rows_of == set(changed)), '')
    shown = changed if len(changed) <= ROWS_SHOWN else [
        *changed[:ROWS_SHOWN], f'... {len(changed) - ROWS_SHOWN} more']
    given = '' if kinds[0] is fine else f' (labels {labels})'
    return [Finding(Rule.LABELS,
        f'{name} ({rows} rows, one per {level} class) changed at rows {shown} in one '
        f'training-mode loss pass, but {what} are {sorted(wanted)}{given}: class-indexed state '
        "is updated at its classes' rows only, and the rows of classes absent from the batch "
        f'stay as they are{lookalike}')]


def _run(model: Any, batch: dict[str, Any], mode: str, findings: list[Finding]) -> bool:
    """One pass in ``mode`` without gradients; False (and a finding) when it is hard-wired
    to CUDA on a machine without it. Any other error is the check's own (an error result)."""
    training = mode == 'loss'
    model.train(training)
    try:
        data = preprocess(model, batch, training)
        with torch.no_grad():
            model(**data, mode=mode)
    except Exception as exc:
        if not hard_wired_cuda(exc):
            raise
        findings.append(Finding(Rule.STATE, cuda_message(exc, f'{mode} mode')))
        return False
    return True


def observed_pass(model: nn.Module, batch: dict[str, Any], mode: str, rows: tuple[int, ...],
                  findings: list[Finding]) -> dict[str, list[int]]:
    """Run one pass; add the parameters and buffers it made, removed or reshaped to
    ``findings`` and return the rows it changed in each class-indexed tensor."""
    known = signature(model)
    before = {name: t.detach().clone() for name, t in class_state(model, rows).items()}
    if not _run(model, batch, mode, findings):
        return {}
    findings += signature_findings(known, signature(model), mode)
    changed = {name: changed_rows(tensor, before[name])
               for name, tensor in class_state(model, rows).items()
               if name in before and tensor.shape == before[name].shape}
    return {name: found for name, found in changed.items() if found}


def check(ctx: GuardContext) -> CheckResult:
    """A fresh model keeps its parameters and buffers through its first passes; its
    class-indexed state changes at the batch's classes only, and only in training."""
    ctx = value_context(ctx)  # neither depends on the crop; clip lengths are kept
    hierarchy = ctx.hierarchy  # None where the profile has none: fine state only
    model = ctx.fresh_model()
    built = len(signature(model))
    num_classes = ctx.recipe.num_classes if hierarchy is None else hierarchy.num_classes
    rows = (num_classes,) if hierarchy is None else (num_classes, hierarchy.num_coarse_classes)
    labels = spread_labels(num_classes) if hierarchy is None \
        else coincidence_free_labels(hierarchy)
    recipe = replace(ctx.recipe, batch_size=len(labels))
    findings: list[Finding] = []
    updated = observed_pass(model, make_batch(recipe, labels=labels), 'loss', rows, findings)
    for name, changed in updated.items():
        findings += row_findings(name, len(state.tensors(model)[name]), changed, labels,
                                 hierarchy, num_classes)
    # One sample is enough for inference to make a layer or write a memory.
    one = make_batch(replace(recipe, batch_size=1), labels=labels[:1])
    for name, changed in observed_pass(model, one, 'predict', rows, findings).items():
        findings.append(Finding(Rule.STATE,
            f'predict mode changed rows {changed[:ROWS_SHOWN]} of {name}: inference leaves '
            'class-indexed state as it is (update it only when self.training)'))
    coarse = [] if hierarchy is None else sorted(set(hierarchy(torch.tensor(labels)).tolist()))
    details = {'labels': labels, 'coarse_labels': coarse, 'updated_rows': updated,
               'class_state': sorted(class_state(model, rows)), 'parameters_and_buffers': built}
    return finish('first_pass', findings,
                  f'the {built} parameters and buffers keep their names and shapes through the '
                  f'first loss and predict passes; {len(updated)} class-indexed states changed '
                  f"at exactly their classes' rows (labels {labels}, coarse {coarse}), none at "
                  'inference', details)
