"""Where a prediction reads the labels: the calls whose output changes when only the labels do.

At inference the labels are not there to be read (CONTRACT §2): a prediction
must come out the same whatever the data samples carry. To see where one does
not, the predict pass is run a second time on the same inputs with every
sample's label moved to another sample (the batch's labels rolled by one, so
each sample's label changes and every value stays in range), and the two
recordings are compared call by call. A call whose output differs while none
of the calls it made differs is where the labels got in: the picture
(:mod:`epam_guard.trace.flow`) marks it as a violation of the rule. Outputs are
compared as the model's values (tensors, and the scores a data sample
predicts), within a tolerance that a nondeterministic kernel stays inside.
"""
from __future__ import annotations

from typing import Any

import torch

from ..contract.profiles import Rule
from ..model.batch import labels_of, make_batch, rolled
from ..model.context import GuardContext
from ..model.passes import Pass, prediction_of, run_pass, score_vector
from ..probe.describe import is_data_sample, values
from ..probe.recording import Call
from ..report.result import Finding

#: Two outputs are the same prediction when every value agrees this closely.
RTOL, ATOL = 1e-4, 1e-5
#: Elements compared in a tuple, list or dict output (the 6-tuple, a list of data samples).
MAX_ELEMENTS = 4096

Found = list[tuple[Call | None, Finding]]


def differs(first: Any, second: Any) -> bool:
    """True when two outputs of the same call are different values."""
    if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor):
        if first.shape != second.shape or first.dtype != second.dtype:
            return True
        if first.device.type == 'meta':
            return False
        a, b = first.detach().cpu(), second.detach().cpu()
        if a.is_floating_point():
            return not torch.allclose(a.float(), b.float(), rtol=RTOL, atol=ATOL,
                                      equal_nan=True)
        return not torch.equal(a, b)
    if is_data_sample(first) and is_data_sample(second):
        # What a data sample says of the model is its prediction; its labels are the guard's.
        scores = [score_vector(prediction_of(sample)[1]) for sample in (first, second)]
        if scores[0] is None or scores[1] is None:
            return (scores[0] is None) != (scores[1] is None)
        return differs(scores[0], scores[1])
    if isinstance(first, dict) and isinstance(second, dict):
        if set(first) != set(second):
            return True
        return any(differs(first[key], second[key]) for key in list(first)[:MAX_ELEMENTS])
    if isinstance(first, (list, tuple)) and isinstance(second, (list, tuple)):
        if len(first) != len(second):
            return True
        return any(differs(a, b) for a, b in zip(first[:MAX_ELEMENTS], second[:MAX_ELEMENTS]))
    return type(first) is not type(second)


def _keyed(calls: list[Call]) -> dict[tuple[str, str, int], int]:
    """Each call's position, keyed by module, method and occurrence."""
    seen: dict[tuple[str, str], int] = {}
    keyed = {}
    for position, call in enumerate(calls):
        count = seen.get((call.module, call.method), 0)
        seen[(call.module, call.method)] = count + 1
        keyed[(call.module, call.method, count)] = position
    return keyed


def _children(calls: list[Call], position: int) -> range:
    """Positions of the calls made from inside ``calls[position]`` (recorded in call order)."""
    depth = calls[position].depth
    end = position + 1
    while end < len(calls) and calls[end].depth > depth:
        end += 1
    return range(position + 1, end)


def label_readers(ctx: GuardContext, run: Pass) -> Found:
    """The calls of a predict pass whose output follows the labels, each with its finding.

    ``run`` is the recorded predict pass; the comparison pass uses the same
    inputs and views with the labels rolled. A difference that no recorded
    call shows (the recognizer's own code read them) is returned with
    ``None`` as its call. Empty when the labels do not change anything, or
    when the batch has fewer than two distinct labels to exchange.
    """
    labels = labels_of(run.batch)
    other = rolled(labels)
    if run.mode == 'loss' or run.error or other == labels:
        return []
    batch = make_batch(ctx.recipe, views=run.views, labels=other)
    second = run_pass(ctx, run.mode, batch=batch, views=run.views)
    if second.error:
        return [(None, Finding(Rule.ROUTING,
                 f'{run.mode} mode: with the labels {values(torch.tensor(other))} instead of '
                 f'{values(torch.tensor(labels))} in the data samples, the same inputs raise '
                 f'{second.error}: the labels steer inference'))]
    calls, again = run.recorder.calls, second.recorder.calls
    matched = _keyed(again)
    changed = set()
    for key, position in _keyed(calls).items():
        twin = matched.get(key)
        if twin is None or differs(calls[position].output, again[twin].output):
            changed.add(position)
    where = f'labels {values(torch.tensor(labels))} vs {values(torch.tensor(other))}'
    found: Found = []
    for position in sorted(changed):
        if any(child in changed for child in _children(calls, position)):
            continue  # the difference came in further down
        call = calls[position]
        found.append((call, Finding(Rule.ROUTING,
            f'{run.mode} mode: the output of {call.module}.{call.method} changes with the labels '
            f'the data samples carry ({where}, same inputs): a prediction must not read them')))
    if not found and differs(run.output, second.output):
        found.append((None, Finding(Rule.ROUTING,
            f'{run.mode} mode: the predictions change with the labels the data samples carry '
            f'({where}, same inputs), outside any recorded module call: a prediction must not '
            'read them')))
    return found
