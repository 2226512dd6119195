"""The checks, in the order they run. Each is ``check(ctx) -> CheckResult``."""
from __future__ import annotations

from typing import Callable

from ..context import GuardContext
from ..result import CheckResult
from . import ddp, eval_purity, labels, pipeline, routing, runner, structure, summary, train_step

Check = Callable[[GuardContext], CheckResult]

#: name -> check function; the CLI's ``--only``/``--skip`` take these names.
CHECKS: dict[str, Check] = {
    'structure': structure.check,
    'routing': routing.check,
    'labels': labels.check,
    'train_step': train_step.check,
    'eval_purity': eval_purity.check,
    'summary': summary.check,
    'pipeline': pipeline.check,
    'runner': runner.check,
    'ddp': ddp.check,
}
