"""Machine-readable reports of a run: JSON and JUnit XML for CI systems."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

#: ANSI escape sequences, and characters XML 1.0 cannot carry at all.
ANSI = re.compile(r'\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]')
NOT_XML = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]')


def xml_text(text: Any) -> str:
    """``text`` as XML can hold it: escapes removed, control characters shown as ``\\xNN``."""
    plain = ANSI.sub('', str(text))
    return NOT_XML.sub(lambda m: f'\\x{ord(m.group()):02x}', plain)


def write_json(path: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """``{**meta, 'results': [...]}``; results as :meth:`CheckResult.to_json` gives them."""
    payload = {**meta, 'results': results}
    path.write_text(json.dumps(payload, indent=2, default=str) + '\n')


def write_junit(path: Path, results: list[dict[str, Any]], suite: str = 'epam-guard') -> None:
    """One ``<testcase>`` per check; failures and errors carry verdict and findings,
    warnings go to ``<system-out>``."""
    def count(status: str) -> str:
        return str(sum(r['status'] == status for r in results))

    root = ET.Element('testsuite', name=suite, tests=str(len(results)),
                      failures=count('fail'), errors=count('error'), skipped=count('skip'),
                      time=f'{sum(r.get("seconds", 0.0) for r in results):.3f}')
    for result in results:
        case = ET.SubElement(root, 'testcase', classname=suite, name=result['name'],
                             time=f'{result.get("seconds", 0.0):.3f}')
        tag = {'fail': 'failure', 'error': 'error', 'skip': 'skipped'}.get(result['status'])
        if tag:
            element = ET.SubElement(case, tag, message=xml_text(result['verdict']))
            element.text = xml_text('\n'.join(f'[{f["rule"]}] {f["message"]}'
                                              for f in result.get('findings', [])))
        if result.get('warnings'):
            out = ET.SubElement(case, 'system-out')
            out.text = xml_text('\n'.join(f'warning: {w}' for w in result['warnings']))
    ET.ElementTree(root).write(path, encoding='utf-8', xml_declaration=True)
