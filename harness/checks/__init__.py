"""The check registry: each check with the rules it proves and its tier.

A check is ``check(ctx) -> CheckResult``. Its entry here is the one place
that says which contract rules it covers and whether it belongs to the
``fast`` tier (contract checks on tiny batches, seconds: what pre-commit
runs) or the ``launch`` tier (a real Runner, real pipelines, several
processes: CI and the training node). The CLI's ``--list``/``--tier``, the
pytest plugin, the README table and the benchmark read it from here.

Each check also says which contract profiles it runs in
(:data:`epam_guard.contract.profiles.PROFILES`): a check whose rules the profile does
not have is not run, and the report says so (:meth:`CheckSpec.not_run`).

The check modules are imported lazily (:func:`load`), so the registry's
names, rules and tiers are available without torch.

Layer 4: a check reads :mod:`~epam_guard.contract`, :mod:`~epam_guard.report` (its
result), :mod:`~epam_guard.probe` and :mod:`~epam_guard.model`; ``_rank`` is the side of
the ``ddp`` check that runs in each rank, ``_launch`` and ``_outputs`` what the launch-tier
checks share.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable

from ..contract.profiles import EPAM, PROFILES, Profile, Rule

FAST, LAUNCH = 'fast', 'launch'
TIERS = (FAST, LAUNCH)


#: Every profile, the default of a check that judges any recognizer.
EVERY_PROFILE = tuple(PROFILES)


@dataclass(frozen=True)
class CheckSpec:
    """One registered check: its name, module, rules, tier, a one-line summary, and the
    profiles it runs in."""

    name: str
    rules: tuple[Rule, ...]
    tier: str
    summary: str
    profiles: tuple[str, ...] = EVERY_PROFILE

    def not_run(self, profile: Profile) -> str | None:
        """Why the check is not run under ``profile`` (None: it is)."""
        if profile.name in self.profiles:
            return None
        missing = [f'§{rule.value} {rule.short_title}' for rule in self.rules
                   if not profile.has(rule)]
        return (f'not run: the {profile.name} contract has no '
                f'{", ".join(missing) or "rules this check proves"}; it belongs to '
                f'{", ".join(self.profiles)}')

    @property
    def module(self) -> str:
        return f'{__name__}.{self.name}'

    @property
    def function(self) -> Callable[[Any], Any]:
        """The check function (imports its module, and torch, on first use)."""
        return importlib.import_module(self.module).check

    def __call__(self, ctx: Any) -> Any:
        return self.function(ctx)


CHECKS: dict[str, CheckSpec] = {spec.name: spec for spec in (
    CheckSpec('structure', (Rule.ROUTING, Rule.BACKBONE, Rule.HEAD), FAST,
              'the backbone returns the 6-tuple; head scores, losses and predictions have '
              'the contract shape; the metric save_best waits for is produced',
              (EPAM.name,)),
    CheckSpec('routing', (Rule.ROUTING,), FAST,
              'labels reach the model only through the data samples cls_head.loss gets '
              '(never as keyword arguments, never at inference); the backbone gets them in '
              'loss mode where the profile says so (epam: with the 6-tuple to the head)'),
    CheckSpec('labels', (Rule.HEAD, Rule.LABELS), FAST,
              'every loss target is the labels (or hierarchy(labels) where the profile has '
              'one), per sample; one prediction per input sample, following its samples; '
              'out-of-range labels are rejected'),
    CheckSpec('label_blind', (Rule.BLIND,), FAST,
              'predict gives the same scores whatever labels the data samples carry '
              '(shuffled, constant, out of range)'),
    CheckSpec('train_step', (Rule.STATE,), FAST,
              "one step of the config's optimizer lowers the loss; every term and gradient "
              'is finite and of its sign; no trainable parameter is left without a gradient'),
    CheckSpec('eval_purity', (Rule.STATE, Rule.INPUTS), FAST,
              "predict changes no parameter or buffer; no call rewrites the caller's inputs "
              '(a warning in mmaction2, a failure in epam)'),
    CheckSpec('pipe_shapes', (Rule.INPUTS,), FAST,
              "the shapes each of the config's train/val/test pipelines makes, derived from its "
              'transforms\' parameters without decoding, are what the model takes'),
    CheckSpec('first_pass', (Rule.STATE, Rule.LABELS), FAST,
              'a fresh model keeps its parameters and buffers (names, shapes) through its first '
              'loss and predict passes; class-indexed state changes at the rows of the '
              "batch's labels or hierarchy(labels) only, and only in training"),
    CheckSpec('summary', (Rule.STATE,), FAST,
              'parameter counts per part (torchinfo); no part with parameters is frozen'),
    CheckSpec('pipeline', (Rule.INPUTS, Rule.HEAD), LAUNCH,
              "the config's train/val/test pipelines on synthetic data in the format of its "
              'datasets make what the model takes'),
    CheckSpec('runner', (Rule.HEAD, Rule.STATE), LAUNCH,
              "a real MMEngine Runner from the config trains, validates, checkpoints, and "
              'writes nothing outside its temporary folder'),
    CheckSpec('ddp', (Rule.STATE,), LAUNCH,
              "two ranks started by torch.distributed.run's agent train the config's own "
              'Runner under its DDP wrapper; passes only when every rank logged every '
              'iteration; a rank that dies is named; parameters without a gradient are named '
              'by module, with the fix'),
)}


def names_in(tier: str | None = None) -> list[str]:
    """Check names in registry order, of one tier (``fast``/``launch``) or all."""
    return [name for name, spec in CHECKS.items() if tier in (None, 'all', spec.tier)]


def select_checks(only: Iterable[str] | None = None, skip: Iterable[str] | None = None,
                  tier: str | None = None) -> list[str]:
    """Names to run, in registry order; unknown names raise a ``GuardError``."""
    from ..contract.errors import GuardError

    only, skip = list(only or []), list(skip or [])
    unknown = [name for name in only + skip if name not in CHECKS]
    if unknown:
        raise GuardError(f'unknown check(s) {", ".join(unknown)}; choose from '
                         f'{", ".join(CHECKS)}')
    if tier not in (None, 'all', *TIERS):
        raise GuardError(f'--tier must be one of {", ".join(TIERS)} or all, but got {tier!r}')
    return [name for name in names_in(tier) if (not only or name in only) and name not in skip]


Check = Callable[[Any], Any]
