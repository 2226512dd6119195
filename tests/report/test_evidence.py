"""``epam_guard.report.evidence``: what ``epam-guard check -v`` shows of a check's details."""
from __future__ import annotations

import io

from epam_guard.report.console import Console
from epam_guard.report.evidence import MAX_LINES, WIDTH, compact, evidence_lines

STRUCTURE = {
    'structure': {'backbone': {'loss': [{'shape': [2, 432, 4, 2, 2], 'dtype': 'float32'}, None]},
                  'scores_eval': {'rgb': {'shape': [10, 60], 'dtype': 'float32'}}},
    'metrics': {'acc/top1': 0.123456},
    'full_text': ['hidden: shown by the findings'],
}


def test_tensors_floats_and_long_containers_are_compact():
    assert compact({'shape': [2, 60], 'dtype': 'float32'}) == 'float32(2, 60)'
    assert compact(0.123456) == '0.1235'
    long = compact(list(range(1000)), budget=40)
    assert long.startswith('[0, 1, 2') and long.endswith('...]') and len(long) <= 44


def test_details_become_one_bounded_line_per_entry():
    lines = evidence_lines(STRUCTURE)
    assert lines == [
        'structure.backbone.loss: [float32(2, 432, 4, 2, 2), None]',
        'structure.scores_eval: {rgb: float32(10, 60)}',
        'metrics: {acc/top1: 0.1235}',
    ]
    many = evidence_lines({f'key{i}': 'x' * 1000 for i in range(40)})
    assert len(many) == MAX_LINES and many[-1] == f'... {40 - MAX_LINES + 1} more (--json)'
    assert max(len(line) for line in many) <= WIDTH


def test_verbose_shows_a_passing_checks_evidence_and_plain_does_not():
    result = {'name': 'structure', 'status': 'pass', 'verdict': 'ok', 'seconds': 0.5,
              'findings': [], 'warnings': [], 'details': STRUCTURE}
    plain, verbose = io.StringIO(), io.StringIO()
    Console(stream=plain).result(result)
    Console(verbose=True, stream=verbose).result(result)
    assert plain.getvalue().count('\n') == 1
    shown = verbose.getvalue().splitlines()
    assert shown[1].strip() == 'structure.backbone.loss: [float32(2, 432, 4, 2, 2), None]'
    assert len(shown) == 4
