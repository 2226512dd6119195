"""One mistake, one headline: the cause several failing checks share, when there is one.

A wrong ``model.cls_head.in_channels`` makes every fast check fail, each with
its own symptom (structure blames the 6-tuple's shape, routing and labels
report the head's exception, summary only says torchinfo failed). This
module reads those results, as the JSON-able data they are, and finds the
one count that did not match: which module received which input with how
many channels (or class scores), what the config says, and which checks
fail because of it.

:func:`root_cause` is pure: it reads ``CheckResult`` fields and details only
(no model, no config, no torch), so it works on results that crossed a
process boundary or were loaded from a JSON report.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..contract.profiles import (
    EPAM,
    FEATURE_NAMES,
    HEAD_CONFIG,
    PROFILES,
    RENOVATION_OF,
    STREAM_INPUTS,
    TUPLE_NAMES,
    Rule,
)
from .result import CheckResult, Status

#: A cause must explain at least this many failed checks to become the headline.
MIN_FOLLOWERS = 2

#: Class names of the reference streams, as their own errors spell them.
STREAM_CLASSES = {'XShiftNet': 'rgb_stream', 'PoseXShiftNet': 'pose_stream'}


@dataclass(frozen=True)
class Mismatch:
    """What one error text says: a count a module expected and the count it got.

    ``kind`` is ``channels``, ``fine`` or ``coarse`` (class-score widths), or
    ``classes`` when a text does not say which of the two. Either count may be
    None where the text gives only one side; such a mismatch can corroborate
    a cause but never be one.
    """

    kind: str
    expected: int | None
    got: int | None
    name: str | None = None
    module: str | None = None
    text: str = ''

    def complete(self) -> bool:
        return self.expected is not None and self.got is not None

    def agrees_with(self, other: Mismatch) -> bool:
        """Same kind (``classes`` matches either width) and no count that differs."""
        kinds = {self.kind, other.kind}
        if len(kinds) > 1 and not ('classes' in kinds and kinds <= {'classes', 'fine', 'coarse'}):
            return False
        return all(a is None or b is None or a == b for a, b in
                   ((self.expected, other.expected), (self.got, other.got)))


@dataclass
class RootCause:
    """The one mistake several failures follow from.

    Attributes:
        message: the headline, e.g. ``cls_head received x_rgb with 432 channels
            but model.cls_head.in_channels is [400, 216]``.
        module: the module whose input did not match (``cls_head``,
            ``backbone.pose_stream``).
        input: what it received (``x_rgb``, ``heatmap_imgs``, ``fine scores``).
        expected: the count the module was built for.
        got: the count it received.
        config_key: the config entry that sets ``expected`` (None where the
            contract does not say which entry sets it).
        config_value: that entry's value where the results show it, else None.
        rule: the contract section the mismatch breaks (``'3'``).
        fix: the next step, in one line.
        evidence: the error text the cause was recognised from.
        follows: the checks that fail because of it, in the order they ran.
    """

    message: str
    module: str
    input: str
    expected: int
    got: int
    config_key: str | None
    config_value: Any
    rule: str
    fix: str
    evidence: str
    follows: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


# ------------------------------------------------------------------ reading error texts
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # The reference head: "feats[0] (x_rgb) must be an (N, 400, ...) tensor, but got (4, 432, ...)"
    (re.compile(r'feats\[\d+\] \((\w+)\) must be an \(N, (\d+), [^)]*\) tensor, '
                r'but got \(\d+, (\d+)'), 'head_feats'),
    # The reference streams: "PoseXShiftNet expects an (N, 25, T, H, W) tensor, but got
    # shape (4, 17, ...)"
    (re.compile(r'(\w+) expects an \(N, (\d+), T, H, W\) tensor, but got shape \(\d+, (\d+)'),
     'stream'),
    # torch convolutions: "weight of size [24, 25, 1, 3, 3], expected input[4, 17, ...] to have
    # 25 channels, but got 17 channels instead"
    (re.compile(r'expected input\[[^\]]*\] to have (\d+) channels, but got (\d+) channels'),
     'conv'),
    # torch linear layers: "mat1 and mat2 shapes cannot be multiplied (4x432 and 400x60)"
    (re.compile(r'mat1 and mat2 shapes cannot be multiplied \(\d+x(\d+) and (\d+)x\d+\)'),
     'linear'),
    # torch batch norm: "running_mean should contain 400 elements not 432"
    (re.compile(r'running_mean should contain (\d+) elements not (\d+)'), 'norm'),
    # The structure check: "x_rgb must have shape (4, 400, 4, 2, 2), but got (4, 432, 4, 2, 2)"
    (re.compile(r'(\w+) must have shape \(([\d, ]+)\), but got \(([\d, ]+)\)'), 'tuple'),
    # The structure check: "score 'rgb_coarse' must have 8 columns, but got (20, 6) float32"
    (re.compile(r"score '(\w+)' must have (\d+) columns, but got \(\d+, (\d+)\)"), 'score'),
    # The reference tree loss: "needs (4, 60) fine and (4, 8) coarse logits, but got (4, 50)
    # and (4, 8)"
    (re.compile(r'needs \(\d+, (\d+)\) fine and \(\d+, (\d+)\) coarse logits, '
                r'but got \(\d+, (\d+)\) and \(\d+, (\d+)\)'), 'tree'),
    # Indexing a per-class table with a label beyond its width (either width).
    (re.compile(r'index (\d+) is out of bounds for dimension \d+ with size (\d+)'), 'index'),
    # A hierarchy that rejects a label the head's num_classes allows.
    (re.compile(r'labels must lie in \[0, (\d+)\) \(num_classes=\d+\), but \d+ of \d+ are '
                r'outside it: \[(\d+)'), 'range'),
]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.replace(' ', '').split(',') if part)


def mismatches(text: str) -> Iterator[Mismatch]:
    """Every count mismatch one error or finding text states."""
    for pattern, form in _PATTERNS:
        for match in pattern.finditer(text):
            groups, quoted = match.groups(), match.group(0)
            if form == 'head_feats':
                yield Mismatch('channels', int(groups[1]), int(groups[2]), name=groups[0],
                               module='cls_head', text=quoted)
            elif form == 'stream':
                yield Mismatch('channels', int(groups[1]), int(groups[2]),
                               module=_stream_module(groups[0]), text=quoted)
            elif form in ('conv', 'norm'):
                yield Mismatch('channels', int(groups[0]), int(groups[1]), text=quoted)
            elif form == 'linear':
                yield Mismatch('channels', int(groups[1]), int(groups[0]), text=quoted)
            elif form == 'tuple':
                yield from _tuple_mismatch(groups[0], _ints(groups[1]), _ints(groups[2]), quoted)
            elif form == 'score':
                kind = 'coarse' if 'coarse' in groups[0] else 'fine'
                yield Mismatch(kind, int(groups[1]), int(groups[2]), module='cls_head',
                               text=quoted)
            elif form == 'tree':
                fine_e, coarse_e, fine_g, coarse_g = (int(g) for g in groups)
                if fine_e != fine_g:
                    yield Mismatch('fine', fine_e, fine_g, module='cls_head', text=quoted)
                if coarse_e != coarse_g:
                    yield Mismatch('coarse', coarse_e, coarse_g, module='cls_head', text=quoted)
            elif form == 'index' and int(groups[0]) >= int(groups[1]):
                yield Mismatch('classes', None, int(groups[1]), text=quoted)
            elif form == 'range':
                # The model's hierarchy has that many fine classes; the head allowed more.
                yield Mismatch('fine', int(groups[0]), None, text=quoted)


def _stream_module(class_name: str) -> str | None:
    if class_name in STREAM_CLASSES:
        return f'backbone.{STREAM_CLASSES[class_name]}'
    return 'backbone.pose_stream' if 'pose' in class_name.lower() else None


def _tuple_mismatch(name: str, expected: tuple[int, ...], got: tuple[int, ...],
                    text: str) -> Iterator[Mismatch]:
    if name not in FEATURE_NAMES or len(expected) < 2 or len(got) < 2:
        return
    if expected[1] != got[1]:
        yield Mismatch('channels', expected[1], got[1], name=_stream_feature(name),
                       module='cls_head', text=text)


def _stream_feature(name: str) -> str:
    """``x_rgb1`` -> ``x_rgb``: the renovation features have their stream's channels."""
    return RENOVATION_OF.get(name, name)


# ------------------------------------------------------------------ reading results
def texts(result: CheckResult) -> list[str]:
    """What a result says about why it failed: verdict, findings, recorded errors."""
    found = [result.verdict, *(finding.message for finding in result.findings)]
    details = result.details or {}
    errors = details.get('errors')
    if isinstance(errors, dict):
        found.extend(str(value) for value in errors.values() if value)
    for key in ('error', 'cause'):
        if isinstance(details.get(key), str):
            found.append(details[key])
    trace = details.get('traceback')
    if isinstance(trace, list) and trace:
        found.append(str(trace[-1]))
    return found


def _failed(results: Iterable[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status in (Status.FAIL, Status.ERROR)]


def _hides_forward_error(result: CheckResult) -> bool:
    """torchinfo reports only that the forward pass it ran raised, not what it raised."""
    return any('Failed to run torchinfo' in text for text in texts(result))


def _states(result: CheckResult, cause: Mismatch) -> bool:
    return any(m.agrees_with(cause) for text in texts(result) for m in mismatches(text))


def _follows(result: CheckResult, cause: Mismatch, raised: bool) -> bool:
    said = [m for text in texts(result) for m in mismatches(text)]
    if any(m.agrees_with(cause) for m in said):
        return True
    # A forward pass that raised hides the error behind torchinfo's own; when the other
    # checks' passes raised the cause's error, this one's pass (the same model, the same
    # inputs) did too, provided the result states no mismatch of its own.
    return raised and not said and _hides_forward_error(result)


# ------------------------------------------------------------------ naming the cause
def _structure(results: list[CheckResult]) -> CheckResult | None:
    return next((r for r in results if r.name == 'structure'), None)


def _observed_channels(results: list[CheckResult]) -> dict[str, int]:
    """Channels of each feature the backbone returned, as the structure check recorded."""
    found: dict[str, int] = {}
    structure = _structure(results)
    backbone = ((structure.details or {}).get('structure') or {}).get('backbone') \
        if structure else None
    for output in (backbone or {}).values():
        if not isinstance(output, list):
            continue
        for name, element in zip(TUPLE_NAMES, output):
            shape = element.get('shape') if isinstance(element, dict) else None
            if name in FEATURE_NAMES and isinstance(shape, list) and len(shape) > 1:
                found.setdefault(_stream_feature(name), int(shape[1]))
    return found


def _expected_channels(results: list[CheckResult]) -> dict[str, int]:
    """Channels the head was built for, per feature, where structure's findings state them."""
    found: dict[str, int] = {}
    structure = _structure(results)
    for finding in structure.findings if structure else []:
        for m in mismatches(finding.message):
            if m.kind == 'channels' and m.name and m.expected is not None:
                found.setdefault(m.name, m.expected)
    return found


def _last_module(results: list[CheckResult]) -> str | None:
    """The module entered last before a pass raised, from routing's recorded calls."""
    routing = next((r for r in results if r.name == 'routing'), None)
    calls = (routing.details or {}).get('calls') if routing else None
    if not isinstance(calls, dict):
        return None
    raised = [m.group(1) for text in texts(routing) for m in
              re.finditer(r'(\w+) mode raised', text)] if routing else []
    for mode in [*raised, 'loss', 'predict']:
        made = calls.get(mode)
        if isinstance(made, list) and made:
            return str(made[-1]).split('(')[0].rsplit('.', 1)[0]
    return None


def _generic_channel_cause(cause: Mismatch, results: list[CheckResult]) -> RootCause:
    """A channel mismatch in a model judged by a profile without EPAM's structures: the
    module and the config key of the head where it is the head, no 6-tuple names."""
    module = cause.module or _last_module(results)
    assert cause.expected is not None and cause.got is not None
    if module is not None and module.split('.')[0] == 'cls_head':
        key = f'{HEAD_CONFIG}.in_channels'
        return _made(module, 'its input', cause, key, None, Rule.HEAD,
                     f"make {key} match the channels the backbone (or neck) returns")
    where = module or 'a module'
    return RootCause(f'{where} received an input with {cause.got} channels but was built for '
                     f'{cause.expected}', where, 'its input', cause.expected, cause.got, None,
                     None, Rule.INPUTS.value, f'make the channels {where} is built for match '
                     'what reaches it', cause.text)


def _channel_cause(cause: Mismatch, results: list[CheckResult]) -> RootCause:
    module, name = cause.module, cause.name
    observed = _observed_channels(results)
    if name is None and module in (None, 'cls_head'):
        name = next((n for n in ('x_rgb', 'x_pose') if observed.get(n) == cause.got), None)
    if module is None:
        module = 'cls_head' if name else _last_module(results)
    assert cause.expected is not None and cause.got is not None
    if module == 'cls_head' or name in FEATURE_NAMES:
        expected = {**observed, **_expected_channels(results)}
        if name:
            expected[name] = cause.expected
        value: Any = [expected.get('x_rgb'), expected.get('x_pose')]
        if None in value:
            value = None
        key = f'{HEAD_CONFIG}.in_channels'
        shown = name or 'a feature'
        makes = [observed.get('x_rgb'), observed.get('x_pose')]
        fix = (f'set {key} to {makes} (what the backbone returns), or change the backbone'
               if None not in makes else f'make {key} match the backbone\'s features')
        return _made('cls_head', shown, cause, key, value, Rule.BACKBONE, fix)
    stream = (module or '').rsplit('.', 1)[-1]
    if module == f'backbone.{stream}' and stream in STREAM_INPUTS:
        key = f'model.{module}.in_channels'
        fix = (f'set {key} to {cause.got} (what the pipeline makes), or change the pipeline'
               if stream == 'pose_stream' else f'set {key} to {cause.got}')
        return _made(module, STREAM_INPUTS[stream], cause, key, cause.expected, Rule.INPUTS,
                     fix)
    # A module the contract does not name: no config key can be vouched for.
    where = module or 'a module'
    message = (f'{where} received an input with {cause.got} channels but was built for '
               f'{cause.expected}')
    return RootCause(message, where, 'its input', cause.expected, cause.got, None, None,
                     Rule.BACKBONE.value, f'make the channels {where} is built for match '
                     'what reaches it', cause.text)


def _made(module: str, shown: str, cause: Mismatch, key: str, value: Any, section: Rule,
          fix: str) -> RootCause:
    assert cause.expected is not None and cause.got is not None
    said = value if value is not None else cause.expected
    message = f'{module} received {shown} with {cause.got} channels but {key} is {said}'
    return RootCause(message, module, shown, cause.expected, cause.got, key, value,
                     section.value, fix, cause.text)


def _class_cause(cause: Mismatch) -> RootCause:
    assert cause.expected is not None and cause.got is not None
    fine = cause.kind == 'fine'
    key = f'{HEAD_CONFIG}.{"num_classes" if fine else "num_coarse_classes"}'
    what = 'fine' if fine else 'coarse'
    groups = 'fine classes' if fine else 'coarse groups'
    message = (f'cls_head makes {cause.got} {what} scores but the label hierarchy has '
               f'{cause.expected} {groups}: {key} is {cause.got}')
    fix = (f'make {key} and model.hierarchy agree (one definition of the classes, '
           f'read by both)')
    return RootCause(message, 'cls_head', f'{what} scores', cause.expected, cause.got, key,
                     cause.got, Rule.LABELS.value, fix, cause.text)


#: The guard's synthetic inputs, by recipe field: what each is called, and how an
#: assumption about it reads in ``recipe['assumed']``.
GUARD_INPUTS = {'heatmap_channels': ('heatmap_imgs', 'heat-map channels'),
                'rgb_channels': ('imgs', 'RGB channels')}


def _guard_made(cause: Mismatch, inputs: dict[str, Any] | None) -> RootCause | None:
    """The guard's own picture of the model, when that is what the mismatch is.

    A module that received as many channels as the guard's synthetic input has,
    a count the guard had to assume (the config does not say it), was fed the
    guard's guess: no defect of the model, and no config key of the user's is
    to blame. A count the config states stays the config's.
    """
    if not inputs or cause.kind != 'channels' or cause.module == 'cls_head' or \
            cause.name in FEATURE_NAMES:
        return None
    assert cause.expected is not None and cause.got is not None
    for field_name, (name, said) in GUARD_INPUTS.items():
        assumed = [note for note in inputs.get('assumed') or () if note.startswith(said)]
        if inputs.get(field_name) != cause.got or not assumed:
            continue
        where = cause.module or 'the model'
        message = (f"the guard's own {name} have {cause.got} channels, an assumption ("
                   f'{assumed[0]}), and {where} was built for {cause.expected}: the checks '
                   "failed on the guard's inputs, not on a defect of the model")
        fix = (f'say in the config what the model takes: the stream\'s in_channels '
               f'({cause.expected}) in model.backbone, e.g. pose_stream=dict(in_channels='
               f'{cause.expected}), or GeneratePoseTarget\'s key points / skeletons'
               if name == 'heatmap_imgs' else
               f'declare the RGB stream\'s in_channels ({cause.expected}) in model.backbone')
        return RootCause(message, where, name, cause.expected, cause.got, None, None,
                         Rule.INPUTS.value, fix, cause.text)
    return None


def root_cause(results: Iterable[CheckResult], inputs: dict[str, Any] | None = None,
               contract: str | None = None) -> RootCause | None:
    """The one mismatch that several failed checks follow from, or None.

    Candidates are the count mismatches the failures state with both counts
    (a channel count a module was built for and the one it received, or a
    class-score width and the hierarchy's). The candidate that explains the
    most failed checks wins if it explains at least two; failures that share
    no cause give None. ``inputs`` is the run's batch recipe (the report
    header's ``recipe``): a mismatch the guard's own assumed inputs created is
    said to be the guard's, never blamed on the model (:func:`_guard_made`).
    ``contract`` is the profile the model was judged by (the header's ``contract``;
    None: ``epam``): only a profile with EPAM's 6-tuple gets causes in its names
    (``x_rgb``, the streams, §3).
    """
    results = list(results)
    failed = _failed(results)
    candidates: dict[tuple[str, int | None, int | None], Mismatch] = {}
    for result in failed:
        for text in texts(result):
            for m in mismatches(text):
                if m.complete():
                    # Keep the most telling statement of each mismatch (one naming its input).
                    key = (m.kind, m.expected, m.got)
                    known = candidates.get(key)
                    if known is None or (m.name or m.module) and not (known.name or known.module):
                        candidates[key] = m
    best: tuple[Mismatch, list[str]] | None = None
    for cause in candidates.values():
        raised = any(r.status is Status.ERROR and _states(r, cause) for r in failed)
        follows = [r.name for r in failed if _follows(r, cause, raised)]
        if best is None or len(follows) > len(best[1]):
            best = (cause, follows)
    if best is None or len(best[1]) < MIN_FOLLOWERS:
        return None
    cause, follows = best
    epam = PROFILES.get(contract or EPAM.name, EPAM).has(Rule.BACKBONE)
    channels = _channel_cause if epam else _generic_channel_cause
    found = _guard_made(cause, inputs) or (
        channels(cause, results) if cause.kind == 'channels' else _class_cause(cause))
    found.follows = follows
    return found
