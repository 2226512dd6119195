"""How a bisect step judges its commit: the ``(check, section)`` pairs that fail there,
against those already failing at ``--good``, and the exit status ``git bisect run`` reads."""
from __future__ import annotations

from typing import Any

GOOD, BAD, SKIP, STOP = 0, 1, 125, 255


#: The line a step prints last, so the caller reading ``git bisect run``'s output knows.
MARK = '@@epam-guard-bisect-step'


#: Pseudo-check name of a failure before any check ran (a rule broken while building).
BUILD = 'build'


def failing_pairs(report: dict[str, Any]) -> set[tuple[str, str]]:
    """``(check, section)`` for each rule a check failed on; ``(check, 'error')`` for an error."""
    pairs: set[tuple[str, str]] = set()
    for result in report.get('results', []):
        if result['status'] not in ('fail', 'error'):
            continue
        sections = {f['section'] for f in result.get('findings', [])}
        if result['status'] == 'error' or not sections:
            sections.add('error')
        pairs |= {(result['name'], section) for section in sections}
    fatal = report.get('fatal') or {}
    if fatal.get('rule'):  # the model broke a rule before any check could run
        pairs.add((BUILD, str(fatal['rule']).split('§', 1)[-1].split()[0]))
    return pairs


def classify(report: dict[str, Any] | None, baseline: set[tuple[str, str]],
             targets: set[tuple[str, str]] | None) -> tuple[str, list[tuple[str, str]], str]:
    """``(status, new failing pairs, reason)``; status ``good``, ``bad`` or ``skip``."""
    if report is None:
        return 'skip', [], 'the guard wrote no report'
    fatal = report.get('fatal') or {}
    if report.get('interrupted'):
        return 'stop', [], f'interrupted ({report["interrupted"]})'
    if fatal and not fatal.get('rule'):
        return 'skip', [], str(fatal.get('message', 'the model could not be built'))
    new = failing_pairs(report) - baseline
    if targets is not None:
        new &= targets
    return ('bad' if new else 'good'), sorted(new), ''
