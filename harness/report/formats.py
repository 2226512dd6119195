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
#: What a terminal would act on rather than show: C0 controls but tab and newline (a
#: carriage return rewrites the line), DEL, C1 controls (\x9b starts a sequence too).
NOT_SHOWN = re.compile('[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]')


def xml_text(text: Any) -> str:
    """``text`` as XML can hold it: escapes removed, control characters shown as ``\\xNN``."""
    plain = ANSI.sub('', str(text))
    return NOT_XML.sub(lambda m: f'\\x{ord(m.group()):02x}', plain)


def terminal_text(text: Any) -> str:
    """``text`` as a terminal shows it, not acts on it: escapes removed (as in JUnit),
    control characters shown as ``\\xNN``."""
    plain = ANSI.sub('', str(text))
    return NOT_SHOWN.sub(lambda m: f'\\x{ord(m.group()):02x}', plain)


def write_json(path: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """``{**meta, 'results': [...]}``; results as :meth:`CheckResult.to_json` gives them."""
    payload = {**meta, 'results': results}
    path.write_text(json.dumps(payload, indent=2, default=str) + '\n')


def unfinished(names: list[str], results: list[dict[str, Any]], running: str | None,
               why: str) -> list[dict[str, Any]]:
    """An ``error`` result for each selected check that has none (a run that was interrupted
    or could not start): the one ``running`` when it stopped, and each one never started.

    Without them a CI system reads an interrupted run's JUnit as green: every
    case it holds passed.
    """
    done = {result['name'] for result in results}
    return [{'name': name, 'status': 'error', 'seconds': 0.0, 'findings': [], 'warnings': [],
             'verdict': (f'{why} while this check was running' if name == running
                         else f'not run: {why} before this check started')}
            for name in names if name not in done]


def write_junit(path: Path, results: list[dict[str, Any]], suite: str = 'epam-guard',
                root_cause: dict[str, Any] | None = None, contract: str | None = None) -> None:
    """One ``<testcase>`` per check; failures and errors carry verdict and findings,
    warnings go to ``<system-out>``.

    ``root_cause`` (:func:`epam_guard.report.rootcause.root_cause` as a dict) goes
    into the suite's properties and ``<system-out>``, and into the failure of
    each check that follows from it, where a CI system's test view shows it.
    ``contract`` (the profile the model was judged by) is a suite property too.
    """
    def count(status: str) -> str:
        return str(sum(r['status'] == status for r in results))

    root = ET.Element('testsuite', name=suite, tests=str(len(results)),
                      failures=count('fail'), errors=count('error'), skipped=count('skip'),
                      time=f'{sum(r.get("seconds", 0.0) for r in results):.3f}')
    cause = root_cause_text(root_cause) if root_cause else ''
    follows = set((root_cause or {}).get('follows') or [])
    if cause or contract:
        properties = ET.SubElement(root, 'properties')
        if contract:
            ET.SubElement(properties, 'property', name='contract', value=xml_text(contract))
        if cause:
            ET.SubElement(properties, 'property', name='root_cause', value=xml_text(cause))
    for result in results:
        case = ET.SubElement(root, 'testcase', classname=suite, name=result['name'],
                             time=f'{result.get("seconds", 0.0):.3f}')
        tag = {'fail': 'failure', 'error': 'error', 'skip': 'skipped'}.get(result['status'])
        if tag:
            element = ET.SubElement(case, tag, message=xml_text(result['verdict']))
            lines = [f'[{f["rule"]}] {f["message"]}' for f in result.get('findings', [])]
            if cause and result['name'] in follows:
                lines.insert(0, f'{cause} (this check fails because of it)')
            element.text = xml_text('\n'.join(lines))
        if result.get('warnings'):
            out = ET.SubElement(case, 'system-out')
            out.text = xml_text('\n'.join(f'warning: {w}' for w in result['warnings']))
    if cause:
        ET.SubElement(root, 'system-out').text = xml_text(cause)
    ET.ElementTree(root).write(path, encoding='utf-8', xml_declaration=True)


def root_cause_text(cause: dict[str, Any]) -> str:
    """``ROOT CAUSE: message; fix: ...``, on one line."""
    text = f'ROOT CAUSE: {cause["message"]}'
    return text + (f'; fix: {cause["fix"]}' if cause.get('fix') else '')
