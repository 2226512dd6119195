"""The result object every check returns, and the rules it can name."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Status(str, enum.Enum):
    """Outcome of one check."""

    PASS = 'pass'
    FAIL = 'fail'
    ERROR = 'error'
    SKIP = 'skip'


#: The sections of CONTRACT.md a check can cite, by their short names.
RULES: dict[str, str] = {
    '1': 'CONTRACT §1 inputs',
    '2': 'CONTRACT §2 recognizer routing',
    '3': 'CONTRACT §3 backbone 6-tuple',
    '4': 'CONTRACT §4 head',
    '5': 'CONTRACT §5 label semantics',
    '6': 'CONTRACT §6 state and devices',
}


@dataclass
class Finding:
    """One piece of evidence: the rule it breaks and what was seen."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f'[{RULES.get(self.rule, self.rule)}] {self.message}'


@dataclass
class CheckResult:
    """What a check concluded.

    Attributes:
        name: the check's name (``structure``, ``routing``, ...).
        status: pass, fail, error or skip.
        verdict: one line a person reads first; on failure it names the rule.
        findings: the broken rules with their evidence (empty when passing).
        details: JSON-able data the check observed (structure, timings, ...).
        seconds: wall time the check took.
    """

    name: str
    status: Status
    verdict: str
    findings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in (Status.PASS, Status.SKIP)

    @property
    def rules(self) -> list[str]:
        """The contract sections this result cites, in order, without repeats."""
        return list(dict.fromkeys(f.rule for f in self.findings))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data['status'] = self.status.value
        data['findings'] = [
            {'rule': RULES.get(f.rule, f.rule), 'message': f.message}
            for f in self.findings
        ]
        return data


def conclude(name: str, findings: list[Finding], passed: str,
             details: dict[str, Any] | None = None) -> CheckResult:
    """A pass with ``passed`` as verdict, or a fail that leads with the first finding."""
    if not findings:
        return CheckResult(name, Status.PASS, passed, [], details or {})
    more = f' (+{len(findings) - 1} more)' if len(findings) > 1 else ''
    return CheckResult(name, Status.FAIL, f'{findings[0]}{more}', findings, details or {})
