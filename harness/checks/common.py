"""What several checks share: one recorded forward pass, label tensors, predictions,
the config's evaluator and checkpoint hook, and bounded messages."""
from __future__ import annotations

import difflib
from typing import Any

import torch

from ..contract.errors import one_line
from ..contract.profiles import Rule
from ..report.result import MESSAGE_LIMIT, CheckResult, Finding, bounded, conclude

#: Metric names shown when a save_best key is missing.
METRICS_SHOWN = 6


def same_labels(found: Any, expected: torch.Tensor) -> bool:
    """True when ``found`` is an int64 tensor with exactly ``expected``'s values."""
    return (isinstance(found, torch.Tensor) and found.dtype == torch.long
            and found.shape == expected.shape
            and bool(torch.equal(found.detach().cpu(), expected.cpu())))


def integer_targets(call: Any, count: int) -> list[tuple[str, torch.Tensor]]:
    """The per-sample integer tensors (length ``count``) among a call's arguments."""
    return [(name, value) for name, value in call.tensors()
            if not value.is_floating_point() and value.dim() == 1 and value.numel() == count]


# ------------------------------------------------------------------ bounded messages
def finish(name: str, findings: list[Finding], passed: str,
           details: dict[str, Any] | None = None,
           warnings: list[str] | None = None) -> CheckResult:
    """:func:`~epam_guard.report.result.conclude` with every finding and warning bounded,
    once each.

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
