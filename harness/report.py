"""Machine-readable reports of check results: JSON and JUnit XML for CI systems."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .result import CheckResult, Status


def write_json(path: Path, results: list[CheckResult], meta: dict[str, Any]) -> None:
    """``{**meta, 'results': [...]}`` with each result's status, verdict, findings."""
    payload = {**meta, 'results': [result.to_json() for result in results]}
    path.write_text(json.dumps(payload, indent=2, default=str) + '\n')


def write_junit(path: Path, results: list[CheckResult], suite: str = 'epam-guard') -> None:
    """One ``<testcase>`` per check; failures and errors carry verdict and findings."""
    root = ET.Element('testsuite', name=suite, tests=str(len(results)),
                      failures=str(sum(r.status is Status.FAIL for r in results)),
                      errors=str(sum(r.status is Status.ERROR for r in results)),
                      skipped=str(sum(r.status is Status.SKIP for r in results)),
                      time=f'{sum(r.seconds for r in results):.3f}')
    for result in results:
        case = ET.SubElement(root, 'testcase', classname=suite, name=result.name,
                             time=f'{result.seconds:.3f}')
        tag = {Status.FAIL: 'failure', Status.ERROR: 'error', Status.SKIP: 'skipped'}.get(
            result.status)
        if tag:
            element = ET.SubElement(case, tag, message=result.verdict)
            element.text = '\n'.join(str(finding) for finding in result.findings)
    ET.ElementTree(root).write(path, encoding='utf-8', xml_declaration=True)
