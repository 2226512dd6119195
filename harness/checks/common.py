"""What several checks share: one recorded forward pass, label tensors, predictions,
the config's evaluator and checkpoint hook, and bounded messages."""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..batch import labels_of, make_batch, preprocess, value_recipe
from ..context import GuardContext
from ..contract import PREDICTION_FIELDS, Rule
from ..errors import one_line
from ..recording import CallRecorder, record
from ..result import MESSAGE_LIMIT, CheckResult, Finding, bounded, conclude

#: A finding's message (and so a verdict) is cut to about this many characters;
#: the full text stays in the result's details (``full_text``).
#: Metric names shown when a save_best key is missing.
METRICS_SHOWN = 6


@dataclass
class Pass:
    """One recorded call of the recognizer in a given mode."""

    mode: str
    batch: dict[str, Any]
    data: dict[str, Any]
    views: int
    recorder: CallRecorder
    output: Any
    error: str | None

    def labels(self) -> torch.Tensor:
        """The fine labels per clip, as the backbone should receive them in loss mode."""
        fine = torch.tensor(labels_of(self.batch), dtype=torch.long)
        return fine.repeat_interleave(self.views)


def value_context(ctx: GuardContext) -> GuardContext:
    """The context the value checks run on: at ``ntu`` size, the config's clip lengths
    with space shrunk to the tiny crop.

    Targets, routing, losses going down, gradients and predictions following
    their samples do not depend on the crop, and the clip lengths are kept for
    models that hard-code them; the full-size shapes are ``structure``'s, from
    a shape-only pass (:func:`shape_pass`). At ``tiny`` it is ``ctx`` itself.
    """
    values = value_recipe(ctx.recipe)
    return ctx if values == ctx.recipe else replace(ctx, recipe=values)


def shape_pass(ctx: GuardContext, mode: str) -> tuple[Pass, str | None]:
    """A pass at the recipe's full size on the ``meta`` device: shapes, dtypes and routing
    without arithmetic. Returns the pass and None, or, for a model that cannot run
    there, a real pass and the reason it could not."""
    key = ('meta', mode, ctx.recipe, id(ctx.model))
    if key in ctx.passes:
        return ctx.passes[key]
    meta = copy.deepcopy(ctx.model).to('meta')
    training = mode == 'loss'
    views = 1 if training else ctx.recipe.views
    batch = make_batch(ctx.recipe, views=views, meta=True)
    meta.train(training)
    try:
        data = preprocess(meta, batch, training)
        with torch.no_grad():
            recorder, output, error = record(meta, lambda: meta(**data, mode=mode))
    except Exception as exc:  # the preprocessor itself cannot run there
        error = one_line(exc, location=False)
    if error is None:
        found: tuple[Pass, str | None] = (
            Pass(mode, batch, data, views, recorder, output, None), None)
    else:
        found = (run_pass(ctx, mode), f'it cannot run on the meta device ({bounded(error, 160)})')
    ctx.passes[key] = found
    return found


def run_pass(ctx: GuardContext, mode: str, *, batch: dict[str, Any] | None = None,
             views: int | None = None) -> Pass:
    """Preprocess a synthetic batch and call the recognizer in ``mode``, recording calls.

    ``loss`` runs in train mode with one view; ``predict``/``tensor`` in eval
    mode with the test pipeline's views unless ``views`` says otherwise. No
    autograd graph is kept: these passes observe calls and values, and at NTU
    size a graph would cost gigabytes (``train_step`` does its own backward).

    The default pass of each mode is recorded once per model and recipe and
    shared by the checks that read it (they only observe it).
    """
    model = ctx.model
    key = (mode, ctx.recipe, id(model)) if batch is None and views is None else None
    if key is not None and key in ctx.passes:
        return ctx.passes[key]
    training = mode == 'loss'
    if views is None:
        views = 1 if training else ctx.recipe.views
    batch = batch if batch is not None else make_batch(ctx.recipe, views=views)
    model.train(training)
    data = preprocess(model, batch, training)
    with torch.no_grad():
        recorder, output, error = record(model, lambda: model(**data, mode=mode))
    result = Pass(mode, batch, data, views, recorder, output, error)
    if key is not None:
        ctx.passes[key] = result
    return result


def same_labels(found: Any, expected: torch.Tensor) -> bool:
    """True when ``found`` is an int64 tensor with exactly ``expected``'s values."""
    return (isinstance(found, torch.Tensor) and found.dtype == torch.long
            and found.shape == expected.shape
            and bool(torch.equal(found.detach().cpu(), expected.cpu())))


def coarse_of(ctx: GuardContext, fine: torch.Tensor) -> torch.Tensor:
    """``hierarchy(fine)`` with the guard's own hierarchy (``ctx.hierarchy``: ``--hierarchy``
    or the config), never with the model's: the referee is not the code under test."""
    return ctx.require_hierarchy()(fine.cpu()).long()


def integer_targets(call: Any, count: int) -> list[tuple[str, torch.Tensor]]:
    """The per-sample integer tensors (length ``count``) among a call's arguments."""
    return [(name, value) for name, value in call.tensors()
            if not value.is_floating_point() and value.dim() == 1 and value.numel() == count]


# ------------------------------------------------------------------ bounded messages
def finish(name: str, findings: list[Finding], passed: str,
           details: dict[str, Any] | None = None,
           warnings: list[str] | None = None) -> CheckResult:
    """:func:`~epam_guard.result.conclude` with every finding and warning bounded, once each.

    A model's error text can be thousands of characters (torchinfo's executed
    layers, a tensor repr); the one-line verdict and the findings stay short,
    and the untrimmed texts of those that were cut go to ``details['full_text']``.
    """
    details = dict(details or {})
    counts: dict[tuple[Rule, str], int] = {}
    for finding in findings:  # the same evidence seen twice (two streams' losses) is one finding
        key = (finding.rule, finding.message)
        counts[key] = counts.get(key, 0) + 1
    shown, full = [], []
    for (rule, message), count in counts.items():
        suffix = f' ({count} times)' if count > 1 else ''
        short = bounded(message, MESSAGE_LIMIT - len(suffix)) + suffix
        shown.append(Finding(rule, short))
        if short != message + suffix:
            full.append(str(Finding(rule, message + suffix)))
    full += [w for w in warnings or [] if bounded(w) != w]
    if full:
        details['full_text'] = full
    return conclude(name, shown,
                    bounded(passed), details, [bounded(w) for w in warnings or []])


# ------------------------------------------------------------------ predictions
def prediction_of(sample: Any) -> tuple[str | None, Any]:
    """``(field, scores)`` of a predicted data sample, from either MMAction2 API.

    ``pred_score`` (1.2) holds a tensor or a dict of tensors; ``pred_scores``
    (1.0/1.1) a ``LabelData`` whose fields are the scores (``item`` for a
    single one). Scores come back as a tensor or a plain dict of tensors;
    ``(None, None)`` when the sample carries neither field.
    """
    keys = set(sample.keys()) if callable(getattr(sample, 'keys', None)) else set()
    for name in PREDICTION_FIELDS:
        if name not in keys:
            continue
        value = sample.get(name)
        if callable(getattr(value, 'keys', None)) and not isinstance(value, dict):
            value = dict(value.items())  # LabelData (1.0/1.1)
        if isinstance(value, dict) and set(value) == {'item'}:
            value = value['item']
        return name, value
    return None, None


def score_vector(scores: Any) -> torch.Tensor | None:
    """One flat float vector of a sample's scores (dict entries in key order)."""
    if isinstance(scores, torch.Tensor):
        return scores.detach().float().flatten().cpu()
    if isinstance(scores, dict) and scores and all(
            isinstance(v, torch.Tensor) for v in scores.values()):
        return torch.cat([scores[k].detach().float().flatten().cpu() for k in sorted(scores)])
    return None


# ------------------------------------------------------------------ evaluator, save_best
def evaluate(cfg: Any, samples: list[Any], labels: list[int]) -> dict[str, Any]:
    """The metrics the config's ``val_evaluator`` computes on ``samples``.

    The samples go to MMEngine's ``Evaluator`` as dicts carrying the label in
    both APIs (``gt_label`` and ``gt_labels.item``), so only the predictions
    (the model's part) decide whether the metric can read them. What the
    metrics write (``DumpResults``) goes to a guard folder, never to the files
    the config names (:func:`._outputs.outputs_redirected`).
    """
    from mmengine.evaluator import Evaluator
    from mmengine.registry import DefaultScope

    from ._outputs import outputs_redirected

    given = []
    for sample, label in zip(samples, labels):
        data = sample.to_dict() if callable(getattr(sample, 'to_dict', None)) else dict(sample)
        data.setdefault('gt_label', torch.tensor([label]))
        data.setdefault('gt_labels', {'item': torch.tensor([label])})
        given.append(data)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmaction')), \
            outputs_redirected(cfg) as safe:
        evaluator = Evaluator(safe.val_evaluator)
        evaluator.process(given)
        return dict(evaluator.evaluate(len(given)))


def closest(name: str, choices: list[str]) -> str | None:
    """The choice most like ``name`` (difflib), the earliest of equally close ones."""
    scored = [(difflib.SequenceMatcher(None, name, choice).ratio(), -index, choice)
              for index, choice in enumerate(choices)]
    best = max(scored, default=None)
    return best[2] if best and best[0] >= 0.5 else None


def checkpoint_configs(cfg: Any) -> list[dict[str, Any]]:
    """The config's ``CheckpointHook`` settings (``default_hooks.checkpoint``, custom hooks)."""
    hooks = [(cfg.get('default_hooks') or {}).get('checkpoint')]
    hooks += list(cfg.get('custom_hooks') or [])
    return [dict(hook) for hook in hooks
            if isinstance(hook, dict) and hook.get('type') in ('CheckpointHook', None)
            and hook.get('save_best')]


def save_best_findings(cfg: Any, metrics: dict[str, Any] | None,
                       why: str = '') -> list[Finding]:
    """``CheckpointHook(save_best=..., rule=..., greater_keys=...)`` against ``metrics``.

    The hook is built by MMEngine itself, so its own validation of ``rule``,
    ``greater_keys``/``less_keys`` and rule inference applies; then every key
    it waits for must be among the metrics the config's evaluator produced
    (``None``: the evaluator produced none, ``why`` says why). The hooks are
    built from a copy whose outputs point into a guard folder, as every part
    built from the config is (:func:`._outputs.outputs_redirected`).
    """
    from mmengine.registry import HOOKS

    from ._outputs import outputs_redirected

    findings = []
    with outputs_redirected(cfg) as safe:
        built: list[tuple[dict[str, Any], Any, Exception | None]] = []
        for settings in checkpoint_configs(safe):
            try:
                built.append((settings, HOOKS.build({**settings, 'type': 'CheckpointHook'}), None))
            except Exception as exc:  # MMEngine's own assertion/KeyError/ValueError
                built.append((settings, None, exc))
    for settings, hook, refused in built:
        keys = settings['save_best']
        keys = [keys] if isinstance(keys, str) else list(keys)
        shown = ', '.join(f'{k}={settings[k]!r}' for k in ('save_best', 'rule', 'greater_keys',
                                                          'less_keys') if k in settings)
        if hook is not None and 'auto' in keys and metrics:
            try:
                # What the hook does at the first validation: infer the rule of the
                # first metric (MMEngine has no public name for this step).
                hook._init_rule(hook.rules, [next(iter(metrics))])
            except Exception as exc:  # MMEngine's own assertion/KeyError/ValueError
                refused = exc
        if refused is not None:
            findings.append(Finding(Rule.HEAD, f'CheckpointHook({shown}) is refused by MMEngine: '
                                               f'{one_line(refused, location=False)}'))
        if metrics is None:
            findings.append(Finding(Rule.HEAD,
                f'CheckpointHook(save_best={keys}) waits for a validation metric, but the '
                f"config's val_evaluator produced none{why}"))
            continue
        produced = list(metrics)
        for key in keys:
            if key == 'auto' or key in metrics:
                continue
            close = closest(key, produced)
            listed = ', '.join(produced[:METRICS_SHOWN]) + (
                f', ... {len(produced) - METRICS_SHOWN} more'
                if len(produced) > METRICS_SHOWN else '')
            fix = f'did you mean {close!r}? ' if close else ''
            findings.append(Finding(Rule.HEAD,
                f'CheckpointHook(save_best={key!r}) waits for a metric the config\'s '
                f'val_evaluator does not produce ({fix}training dies with KeyError after its '
                f'first validation); it produces {listed or "nothing"}'))
    return findings + early_stopping_findings(cfg, metrics)


def early_stopping_findings(cfg: Any, metrics: dict[str, Any] | None) -> list[Finding]:
    """``EarlyStoppingHook(monitor=...)`` in ``custom_hooks`` against ``metrics``: MMEngine's
    hook raises at the first validation when its metric is missing (``strict=True``), or
    warns and never stops early."""
    findings = []
    for hook in cfg.get('custom_hooks') or []:
        if not isinstance(hook, dict) or hook.get('type') != 'EarlyStoppingHook' or \
                metrics is None:
            continue
        monitor = hook.get('monitor')
        if monitor is not None and monitor not in metrics:
            close = closest(str(monitor), list(metrics))
            fix = f'did you mean {close!r}? ' if close else ''
            then = ('training dies with RuntimeError after its first validation'
                    if hook.get('strict') else 'training never stops early')
            findings.append(Finding(Rule.HEAD,
                f'EarlyStoppingHook(monitor={monitor!r}) waits for a metric the config\'s '
                f'val_evaluator does not produce ({fix}{then}); it produces '
                f'{", ".join(list(metrics)[:METRICS_SHOWN])}'))
    return findings
