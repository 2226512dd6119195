"""The trace picture as a person sees it: rendered by headless Chromium, read from the page.

The HTML of the default config and of a broken variant (labels pushed into
``cls_head.loss``) is loaded in a real browser; what it laid out is read back
through the DevTools protocol (boxes' rectangles, computed colours, the
element under a point), never from the HTML text. Screenshots are written to
``$EPAM_GUARD_SCREENSHOTS`` when set (CI keeps them as artefacts; the ones in
``docs/`` come from there), else to the test's temporary folder. Without an
installed Chromium the browser tests skip, saying so.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from browser import Browser, find_browser
from guard_variants import _register, overrides

from epam.head import EPAMHierarchicalHead
from epam.hierarchy import labels_from_samples
from epam_guard.model.batch import rolled
from epam_guard.report.picture import (
    LABEL_COLOUR,
    VIOLATION_COLOUR,
    check_html,
    trace_dot,
    trace_html,
)
from epam_guard.trace.flow import flow
from epam_guard.trace.label_reach import differs

BROWSER = find_browser()
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason='no Chromium installed (Debian: apt-get install -y chromium)')
LABELS_TO_HEAD = overrides('GuardTestLabelsToHeadRecognizer')


@_register
class GuardTestLabelPeekingHead(EPAMHierarchicalHead):
    """At inference, raises the score of the class each data sample's label names."""

    def predict_by_feat(self, cls_scores, data_samples):
        samples = super().predict_by_feat(cls_scores, data_samples)
        for sample, label in zip(samples, labels_from_samples(samples).tolist()):
            scores = dict(sample.pred_score)
            scores['rgb'] = scores['rgb'].clone()
            scores['rgb'][label] += 10.0
            sample.set_pred_score(scores)
        return samples


LABEL_PEEKING = overrides(head='GuardTestLabelPeekingHead')

#: What the page says it laid out: per pass, its panel and each call's box and texts.
LAYOUT = """
(() => {
  const rect = (e) => { const r = e.getBoundingClientRect();
                        return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  return Array.from(document.querySelectorAll('section.pass')).map((section) => ({
    mode: section.dataset.mode, panel: rect(section),
    calls: Array.from(section.querySelectorAll('g.call')).map((g) => ({
      module: g.dataset.module, cls: g.dataset.class, method: g.dataset.method,
      box: rect(g.querySelector('rect.box')),
      texts: Array.from(g.querySelectorAll('rect.box ~ text')).map(rect),
      title: g.querySelector('text.title').textContent,
      violated: g.classList.contains('violated'),
    })),
    labelled: Array.from(section.querySelectorAll('text.labels')).map(
      (t) => ({text: t.textContent, fill: getComputedStyle(t).fill})),
    violations: Array.from(section.querySelectorAll('g.violation')).map((g) => {
      const r = rect(g.querySelector('rect'));
      const hit = document.elementFromPoint(r.x + r.w / 2, r.y + r.h / 2);
      const text = Array.from(g.querySelectorAll('text')).map((t) => t.textContent).join(' ');
      return {rule: g.dataset.rule, box: r, text: text,
              stroke: getComputedStyle(g.querySelector('rect')).stroke,
              on_top: !!hit && g.contains(hit)};
    }),
  }));
})()
"""


@pytest.fixture(scope='module')
def broken_flow(make_context: Any) -> dict[str, Any]:
    """The recorded flow of the variant whose recognizer hands the labels to cls_head.loss."""
    return flow(make_context(cfg_options=LABELS_TO_HEAD))


@pytest.fixture(scope='module')
def peeking_flow(make_context: Any) -> dict[str, Any]:
    """The recorded flow of the variant whose head reads the labels at inference."""
    return flow(make_context(cfg_options=LABEL_PEEKING))


@pytest.fixture(scope='module')
def default_flow(default_context: Any) -> dict[str, Any]:
    return flow(default_context)


def rgb(colour: str) -> str:
    """``'#d9480f'`` -> ``'rgb(217, 72, 15)'`` (how the browser reports a computed colour)."""
    value = colour.lstrip('#')
    return 'rgb({}, {}, {})'.format(*(int(value[i:i + 2], 16) for i in (0, 2, 4)))


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (inner['x'] >= outer['x'] - 0.5 and inner['y'] >= outer['y'] - 0.5
            and inner['x'] + inner['w'] <= outer['x'] + outer['w'] + 0.5
            and inner['y'] + inner['h'] <= outer['y'] + outer['h'] + 0.5)


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a['x'] < b['x'] + b['w'] and b['x'] < a['x'] + a['w']
            and a['y'] < b['y'] + b['h'] and b['y'] < a['y'] + a['h'])


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get('EPAM_GUARD_SCREENSHOTS') or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def rendered(page: str, name: str, tmp_path: Path) -> tuple[list[dict[str, Any]], Path]:
    """Load ``page`` in Chromium; the laid-out passes and the screenshot's path."""
    assert BROWSER is not None
    html = tmp_path / f'{name}.html'
    html.write_text(page)
    with Browser(BROWSER) as browser:
        browser.open(html)
        layout = browser.evaluate(LAYOUT)
        shot = browser.screenshot(screenshots(tmp_path) / f'{name}.png')
    return layout, shot


def assert_boxes(layout: list[dict[str, Any]], recorded: dict[str, Any]) -> None:
    """Each recorded call is a visible box holding its texts; none overlap; the passes
    stand side by side."""
    assert [p['mode'] for p in layout] == ['loss', 'predict']
    loss, predict = (p['panel'] for p in layout)
    assert abs(loss['y'] - predict['y']) < 1 and loss['x'] + loss['w'] <= predict['x']
    for drawn, graph in zip(layout, recorded['passes']):
        assert [(c['module'], c['cls'], c['method']) for c in drawn['calls']] == \
            [(n['module'], n['class'], n['method']) for n in graph['nodes']]
        for call in drawn['calls']:
            assert call['box']['w'] > 0 and call['box']['h'] > 0, call
            assert inside(call['box'], drawn['panel']), call
            assert all(inside(text, call['box']) for text in call['texts']), call
        boxes = [c['box'] for c in drawn['calls']]
        assert not any(overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@needs_browser
def test_the_default_config_draws_every_module_and_colours_the_labels(default_context,
                                                                     default_flow, tmp_path):
    recorded = default_flow
    layout, shot = rendered(trace_html(recorded), 'trace-default', tmp_path)
    assert shot.stat().st_size > 10_000
    assert_boxes(layout, recorded)
    loss, predict = layout
    titles = {c['title'] for c in loss['calls']}
    model = default_context.model
    for name, module in [('recognizer', model), ('data_preprocessor', model.data_preprocessor),
                         ('backbone', model.backbone), ('cls_head', model.cls_head)]:
        assert f'{name} · {type(module).__name__}' in titles
    assert {c['module'] for c in loss['calls']} >= {
        f'backbone.{name}' for name, _ in model.backbone.named_children()}
    assert any(c['cls'].endswith('Loss') for c in loss['calls'])
    # The labels travel in one colour: into the backbone and back out of it in training;
    # at inference nothing carries them, and the contract is kept everywhere.
    assert loss['labelled'] and {t['fill'] for t in loss['labelled']} == {rgb(LABEL_COLOUR)}
    assert any(t['text'].startswith('  gt=') for t in loss['labelled'])
    assert predict['labelled'] == []
    assert loss['violations'] == predict['violations'] == []
    assert not any(c['violated'] for p in layout for c in p['calls'])


@needs_browser
def test_labels_pushed_into_the_head_are_marked_as_a_violation_with_the_rule(broken_flow,
                                                                           tmp_path):
    recorded = broken_flow
    layout, _ = rendered(trace_html(recorded), 'trace-labels-to-head', tmp_path)
    assert_boxes(layout, recorded)
    loss, predict = layout
    head = [c for c in loss['calls'] if c['module'] == 'cls_head' and c['method'] == 'loss']
    assert len(head) == 1 and head[0]['violated']
    notes = [v for v in loss['violations'] if 'cls_head.loss received gt, gt_coarse' in v['text']]
    assert len(notes) == 1, loss['violations']
    note = notes[0]
    assert note['rule'] == '2' and '[CONTRACT §2 recognizer routing]' in note['text']
    assert note['on_top'] and note['box']['w'] > 0 and note['stroke'] == rgb(VIOLATION_COLOUR)
    # The note sits between the call's arrow label and its box.
    assert note['box']['y'] < head[0]['box']['y']
    assert any('gt=' in t['text'] for t in loss['labelled'])
    assert predict['violations'] == []


def test_the_dot_text_has_one_node_per_call_and_the_violation(broken_flow):
    recorded = broken_flow
    text = trace_dot(recorded)
    assert text.startswith('digraph epam_guard_trace {') and text.rstrip().endswith('}')
    nodes = sum(len(graph['nodes']) for graph in recorded['passes'])
    edges = [line for line in text.splitlines() if re.match(r'\s+\w+ -> \w+ \[', line)]
    assert len(edges) == nodes
    assert 'cls_head.loss received gt, gt_coarse' in text and VIOLATION_COLOUR in text


def test_the_check_page_holds_the_results_and_the_picture(default_flow):
    results = [{'name': 'routing', 'status': 'fail', 'verdict': 'v', 'seconds': 1.0,
                'findings': [{'rule': 'CONTRACT §2 recognizer routing', 'section': '2',
                              'message': 'cls_head.loss received gt'}]}]
    page = check_html(results, {'config': 'c.py', 'exit_status': 1}, default_flow)
    assert 'data-check="routing" data-status="fail"' in page
    assert 'data flow of the passes routing recorded' in page
    assert '<script' not in page and 'http' not in page.replace('http://www.w3.org', '')


def test_trace_draws_html_and_dot_from_the_command_line_instead_of_printing(tmp_path, capsys):
    from epam_guard.cli import main
    from epam_guard.report.console import EXIT_OK

    page, dot = tmp_path / 'trace.html', tmp_path / 'trace.dot'
    assert main(['trace', '--in-process', '--batch-size', '2', '--html', str(page),
                 '--dot', str(dot)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.splitlines() == [f'wrote {page}', f'wrote {dot}']
    text = page.read_text()
    assert text.count('<section class="pass"') == 2 and 'data-module="backbone"' in text
    assert dot.read_text().startswith('digraph epam_guard_trace {')


def test_a_failing_check_writes_its_results_and_the_marked_picture(make_context, tmp_path,
                                                                   capsys):
    from epam_guard.cli import main
    from epam_guard.report.console import EXIT_FAILED

    page = tmp_path / 'report.html'
    options = [f'{key}={value}' for key, value in LABELS_TO_HEAD.items()]
    assert main(['check', '--in-process', '--batch-size', '2', '--only', 'routing',
                 '--cfg-options', *options, '--html', str(page)]) == EXIT_FAILED
    capsys.readouterr()
    text = page.read_text()
    assert 'data-check="routing" data-status="fail"' in text
    assert 'class="violation" data-rule="2"' in text
    assert 'cls_head.loss received gt, gt_coarse' in text


def test_a_prediction_that_reads_the_labels_is_marked_where_they_got_in(peeking_flow):
    loss, predict = peeking_flow['passes']
    marked = [(n['module'], n['method']) for n in predict['nodes'] if n['violations']]
    # head.forward gives the same scores whatever the labels; predict_by_feat is not a
    # recorded call, so the difference first shows in the output of cls_head.predict.
    assert marked == [('cls_head', 'predict')]
    note = next(n['violations'] for n in predict['nodes']
                if (n['module'], n['method']) == ('cls_head', 'predict'))
    assert len(note) == 1 and note[0]['rule'] == '2'
    assert 'changes with the labels the data samples carry' in note[0]['message']
    assert predict['violations'] == [] and not any(n['violations'] for n in loss['nodes'])


def test_a_label_blind_prediction_is_not_marked(default_flow):
    assert not any(n['violations'] for p in default_flow['passes'] for n in p['nodes'])
    assert all(p['violations'] == [] for p in default_flow['passes'])


def test_outputs_differ_by_value_and_data_samples_by_their_predictions_only():
    from mmaction.structures import ActionDataSample

    def sample(label: int, score: list[float]) -> Any:
        made = ActionDataSample().set_gt_label(label)
        made.set_pred_score(torch.tensor(score))
        return made

    assert not differs(torch.ones(3), torch.ones(3) + 1e-7)
    assert differs(torch.ones(3), torch.ones(4)) and differs(torch.ones(3), torch.zeros(3))
    assert not differs([sample(0, [1.0, 2.0])], [sample(1, [1.0, 2.0])])
    assert differs([sample(0, [1.0, 2.0])], [sample(0, [1.0, 3.0])])
    assert differs({'a': torch.ones(2)}, {'b': torch.ones(2)})
    assert rolled([3, 1, 2]) == [1, 2, 3]


@needs_browser
def test_closing_the_browser_leaves_no_process_even_in_a_subreaper(tmp_path):
    """Chromium's helpers outlive a browser killed alone; in a subreaper (what this process
    becomes after a supervised CLI run) they stayed as zombies until a later run reaped them."""
    import ctypes

    import psutil

    from epam_guard.probe.processes import become_subreaper

    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int(0)
    libc.prctl(37, ctypes.byref(was), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    assert become_subreaper()
    try:
        rendered('<p>closing</p>', 'closing', tmp_path)
        left = [child for child in psutil.Process().children(recursive=True)
                if child.pid not in before]
    finally:
        libc.prctl(36, was.value, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, as it was
    assert not left, left
