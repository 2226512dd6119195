"""A metric and a hook that write to every output location they are given.

Registered under test-only names when imported (a config's ``custom_imports``).
Each takes one keyword argument per output key the guard's redirection knows
(``epam_guard.checks._outputs``) and, whenever it runs (the metric when it
computes, the hook at the start of a run and after each validation), writes a
file there: into the folder for a folder key, the file itself for a file key,
``<prefix>.json`` for a prefix. A guard that lets any of them reach the user's
paths changes a planted file, which the test sees.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.registry import HOOKS, METRICS

#: The name a writer gives what it writes into a folder.
WRITTEN = 'written-by-the-run.txt'


def target(key: str, value: str) -> Path:
    """Where a writer given ``key=value`` writes."""
    if key.endswith('_prefix'):
        return Path(f'{value}.json')
    if key.endswith('_file') or key in ('out_file_path',):
        return Path(value)
    return Path(value) / WRITTEN


def write_all(places: dict[str, Any], who: str) -> None:
    for key, value in places.items():
        path = target(key, str(value))
        os.makedirs(path.parent, exist_ok=True)
        path.write_text(f'{who} wrote {key}\n')


@METRICS.register_module(force=True)
class GuardTestWritingMetric(BaseMetric):
    """Scores nothing; writes to each place it was given when the evaluator computes."""

    default_prefix = 'writer'

    def __init__(self, collect_dir: str | None = None, **places: Any) -> None:
        super().__init__(collect_dir=collect_dir)
        # collect_dir is BaseMetric's own (ranks gather results there); written here too
        self.places = {**places, **({'collect_dir': collect_dir} if collect_dir else {})}

    def process(self, data_batch: Any, data_samples: Any) -> None:
        self.results.extend({} for _ in data_samples)

    def compute_metrics(self, results: list) -> dict:
        write_all(self.places, type(self).__name__)
        return {}


@HOOKS.register_module(force=True)
class GuardTestWritingHook(Hook):
    """Writes to each place it was given before the run and after each validation."""

    def __init__(self, **places: Any) -> None:
        self.places = dict(places)

    def before_run(self, runner: Any) -> None:
        write_all(self.places, type(self).__name__)

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        write_all(self.places, type(self).__name__)
