"""The result object every check returns."""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from ..contract.profiles import Rule, rule


class Status(str, enum.Enum):
    """Outcome of one check."""

    PASS = 'pass'
    FAIL = 'fail'
    ERROR = 'error'
    SKIP = 'skip'


#: Characters of a verdict or finding shown on one line (reports keep the full text).
MESSAGE_LIMIT = 400


def bounded(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    line = ' '.join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3].rstrip() + '...'


@dataclass
class Finding:
    """One piece of evidence: the rule it breaks and what was seen."""

    rule: Rule
    message: str

    def __post_init__(self) -> None:
        self.rule = rule(self.rule)

    def __str__(self) -> str:
        return f'[{self.rule}] {self.message}'


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
        warnings: what passed but deserves attention (``--strict`` fails on them).
    """

    name: str
    status: Status
    verdict: str
    findings: list[Finding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (Status.PASS, Status.SKIP)

    @property
    def rules(self) -> list[Rule]:
        """The contract sections this result cites, in order, without repeats."""
        return list(dict.fromkeys(f.rule for f in self.findings))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data['status'] = self.status.value
        data['findings'] = [
            {'rule': str(f.rule), 'section': f.rule.value, 'message': f.message}
            for f in self.findings
        ]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        """The inverse of :meth:`to_json` (results cross process boundaries as JSON)."""
        findings = [Finding(rule(f.get('section') or _section(f['rule'])), f['message'])
                    for f in data.get('findings', [])]
        return cls(data['name'], Status(data['status']), data['verdict'], findings,
                   dict(data.get('details') or {}), float(data.get('seconds', 0.0)),
                   list(data.get('warnings') or []))


def _section(rule: str) -> str:
    """``'CONTRACT §3 backbone 6-tuple'`` -> ``'3'`` (reports written without the section)."""
    return rule.split('§', 1)[1].split()[0] if '§' in rule else rule


def conclude(name: str, findings: list[Finding], passed: str,
             details: dict[str, Any] | None = None,
             warnings: list[str] | None = None) -> CheckResult:
    """A pass with ``passed`` as verdict, or a fail that leads with the first finding."""
    if not findings:
        return CheckResult(name, Status.PASS, passed, [], details or {}, warnings=warnings or [])
    more = f' (+{len(findings) - 1} more)' if len(findings) > 1 else ''
    return CheckResult(name, Status.FAIL, f'{findings[0]}{more}', findings, details or {},
                       warnings=warnings or [])
