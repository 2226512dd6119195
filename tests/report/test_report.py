"""``epam_guard.report.formats``: the JSON and JUnit files CI systems read."""
from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

from epam_guard.report.formats import write_json, write_junit, xml_text

RESULTS = [
    {'name': 'structure', 'status': 'pass', 'verdict': 'ok', 'seconds': 0.5, 'findings': [],
     'warnings': ['weights_only: resume would fail']},
    {'name': 'routing', 'status': 'fail', 'verdict': 'gt reached the head', 'seconds': 0.25,
     'findings': [{'rule': '2', 'message': 'cls_head.loss received gt'}]},
    {'name': 'runner', 'status': 'error', 'verdict': 'boom \x1b[31mred\x1b[0m \x00',
     'findings': []},
    {'name': 'ddp', 'status': 'skip', 'verdict': 'one rank only', 'findings': []},
]


def test_json_holds_the_meta_and_every_result(tmp_path):
    path = tmp_path / 'report.json'
    write_json(path, RESULTS, {'versions': {'torch': '2.x'}, 'device': 'cpu'})
    data = json.loads(path.read_text())
    assert data['device'] == 'cpu' and data['versions'] == {'torch': '2.x'}
    assert [r['name'] for r in data['results']] == ['structure', 'routing', 'runner', 'ddp']


def test_junit_counts_statuses_and_carries_findings_and_warnings(tmp_path):
    path = tmp_path / 'junit.xml'
    write_junit(path, RESULTS)
    suite = ElementTree.parse(path).getroot()
    assert (suite.get('tests'), suite.get('failures'), suite.get('errors'),
            suite.get('skipped')) == ('4', '1', '1', '1')
    assert suite.get('time') == '0.750'
    cases: dict[str | None, Any] = {case.get('name'): case for case in suite.iter('testcase')}
    failure = cases['routing'].find('failure')
    assert failure is not None and failure.get('message') == 'gt reached the head'
    assert failure.text == '[2] cls_head.loss received gt'
    assert cases['structure'].findtext('system-out') == \
        'warning: weights_only: resume would fail'
    assert cases['ddp'].find('skipped') is not None
    assert cases['runner'].find('error').get('message') == 'boom red \\x00'


def test_xml_text_drops_escapes_and_shows_control_characters():
    assert xml_text('\x1b[1mbold\x1b[0m\x07') == 'bold\\x07'
    assert xml_text(3) == '3'
