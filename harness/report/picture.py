"""Draw a recorded data flow (:mod:`epam_guard.trace.flow`) as HTML or as Graphviz dot text.

The HTML is one self-contained file: inline CSS and SVG, no script, no font or
image fetched from anywhere. Each pass (loss, predict) is a panel, side by
side; each recorded call is a box (the module's dotted name and its class,
with what it returned), entered by an arrow from the call it was made from,
labelled with the method and what was passed (names, shapes, dtypes). Lines
that carry the labels or their coarse groups, and the arrows passing them, are
drawn in one colour; a call the contract forbids is drawn in another, with the
rule and the finding next to it. Pure Python, no torch: the CLI draws what the
model's process recorded.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

#: Layout, in CSS pixels. Text is monospace, so a line's width is its length.
FONT = 12
CHAR = 7.4
LINE = 15
PAD = 6
INDENT = 30
MARGIN = 14
GAP = 10
#: Characters per line before it is cut (the full value is in ``epam-guard trace``).
MAX_CHARS = 68
#: Characters per line of a violation note before it wraps.
NOTE_CHARS = 72

LABEL_COLOUR = '#d9480f'
VIOLATION_COLOUR = '#c92a2a'
ARROW_COLOUR = '#495057'

STYLE = f"""
body {{ font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; margin: 16px;
       color: #212529; background: #fff; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }}
h2 {{ font-size: 15px; margin: 0 0 6px; }}
.meta, .legend {{ font-size: 13px; color: #495057; margin: 2px 0 10px; }}
.legend span {{ display: inline-block; margin-right: 18px; }}
.swatch {{ display: inline-block; width: 22px; height: 4px; vertical-align: middle;
          margin-right: 6px; }}
.passes {{ display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }}
.pass {{ border: 1px solid #dee2e6; border-radius: 6px; padding: 10px; }}
.pass .error {{ color: {VIOLATION_COLOUR}; font-size: 13px; }}
svg text {{ font-family: 'DejaVu Sans Mono', 'Liberation Mono', monospace;
           font-size: {FONT}px; white-space: pre; }}
svg .title {{ font-weight: bold; }}
svg .box {{ fill: #e7f5ff; stroke: #1c7ed6; stroke-width: 1.2; }}
svg .call.loss-module .box {{ fill: #f3f0ff; stroke: #7048e8; }}
svg .call.violated .box {{ stroke: {VIOLATION_COLOUR}; stroke-width: 2.5; }}
svg .arg.labels, svg .out.labels {{ fill: {LABEL_COLOUR}; font-weight: bold; }}
svg .arrow {{ fill: none; stroke: {ARROW_COLOUR}; stroke-width: 1.3; }}
svg .arrow.labels {{ stroke: {LABEL_COLOUR}; stroke-width: 2.2; }}
svg .arrow.violation {{ stroke: {VIOLATION_COLOUR}; stroke-width: 2.8; }}
svg .violation rect {{ fill: #fff5f5; stroke: {VIOLATION_COLOUR}; stroke-width: 1.5; }}
svg .violation text {{ fill: {VIOLATION_COLOUR}; font-weight: bold; }}
svg .failed {{ fill: {VIOLATION_COLOUR}; }}
table {{ border-collapse: collapse; font-size: 13px; margin-bottom: 16px; }}
td, th {{ border: 1px solid #dee2e6; padding: 3px 8px; text-align: left;
          vertical-align: top; }}
td.fail, td.error {{ color: {VIOLATION_COLOUR}; font-weight: bold; }}
td.pass {{ color: #2b8a3e; font-weight: bold; }}
ul.findings {{ margin: 2px 0; padding-left: 18px; }}
"""

MARKERS = ''.join(
    f'<marker id="head-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
    f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
    for name, colour in (('plain', ARROW_COLOUR), ('labels', LABEL_COLOUR),
                         ('violation', VIOLATION_COLOUR)))


def _cut(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + '…'


def _wrap(text: str, width: int = NOTE_CHARS) -> list[str]:
    lines, line = [], ''
    for word in text.split(' '):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f'{line} {word}' if line else word
    return [*lines, line] if line else lines


def _width(lines: list[str]) -> float:
    return max((len(line) for line in lines), default=0) * CHAR + 2 * PAD


def _text(x: float, y: float, text: str, cls: str) -> str:
    return (f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" '
            f'xml:space="preserve">{html.escape(text)}</text>')


def _shown(line: dict[str, Any]) -> str:
    """A line as drawn: a label-carrying one says so in words too, not in colour alone."""
    return f'{line["text"]}  ← {line["mark"]}' if line['mark'] else line['text']


def _carries(node: dict[str, Any]) -> bool:
    return any(line['mark'] for line in node['args'])


class _Layout:
    """Places one pass's calls top to bottom, each indented by its depth."""

    def __init__(self, graph: dict[str, Any]) -> None:
        self.graph = graph
        self.parts: list[str] = []
        self.arrows: list[str] = []
        self.y = float(MARGIN)
        self.width = 0.0
        #: Per depth, the x of the stem and the bottom of the last box there.
        self.stems: dict[int, tuple[float, float]] = {-1: (MARGIN + 6.0, float(MARGIN))}

    def draw(self) -> str:
        self.stems[-1] = (MARGIN + 6.0, self.y)
        for number, node in enumerate(self.graph['nodes']):
            self._call(number, node)
        for note in self.graph['violations']:
            self._note(MARGIN, note)
        height = self.y + MARGIN
        body = ''.join(reversed(self.arrows)) + ''.join(self.parts)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width + MARGIN:.0f}" '
                f'height="{height:.0f}" data-mode="{self.graph["mode"]}">'
                f'<defs>{MARKERS}</defs>{body}</svg>')

    def _note(self, x: float, violation: dict[str, Any]) -> float:
        lines = _wrap(f'✗ [{violation["title"]}] {violation["message"]}')
        height = len(lines) * LINE + 2 * PAD
        width = _width(lines)
        self.parts.append(f'<g class="violation" data-rule="{html.escape(violation["rule"])}">'
                          f'<rect x="{x:.1f}" y="{self.y:.1f}" width="{width:.1f}" '
                          f'height="{height:.1f}" rx="4"/>')
        for i, line in enumerate(lines):
            self.parts.append(_text(x + PAD, self.y + PAD + (i + 0.8) * LINE, line, 'note'))
        self.parts.append('</g>')
        self.width = max(self.width, x + width)
        self.y += height + 4
        return height

    def _call(self, number: int, node: dict[str, Any]) -> None:
        depth = node['depth']
        x = MARGIN + INDENT * (depth + 1)
        violated = bool(node['violations'])
        carries = _carries(node)
        kind = 'violation' if violated else 'labels' if carries else 'plain'
        loss = node['class'].endswith('Loss')
        classes = ' '.join(['call', *(['violated'] if violated else []),
                            *(['carries-labels'] if carries else []),
                            *(['loss-module'] if loss else [])])
        self.parts.append(f'<g class="{classes}" data-module="{html.escape(node["module"])}" '
                          f'data-class="{html.escape(node["class"])}" '
                          f'data-method="{html.escape(node["method"])}" data-index="{number}">')
        # The arrow's label: the method and what was passed, one argument per line.
        label = [(f'{node["method"]}(', '')]
        label += [('  ' + _cut(_shown(line)), 'labels' if line['mark'] else '')
                  for line in node['args']]
        label.append((')', ''))
        top = self.y
        for i, (text, mark) in enumerate(label):
            self.parts.append(_text(x + PAD, top + (i + 0.8) * LINE, text,
                                    f'arg {mark}'.strip()))
        self.width = max(self.width, x + _width([t for t, _ in label]))
        self.y = top + len(label) * LINE + 2
        for violation in node['violations']:
            self._note(x + PAD, violation)
        # The box: module, class, and what came back (or the error).
        title = f'{node["module"]} · {node["class"]}'
        out = [(_cut(_shown(line)), 'labels' if line['mark'] else '')
               for line in node['returned']]
        if node['error']:
            out.append((_cut(f'!! {node["error"]}'), 'failed'))
        box_top = self.y
        height = (1 + len(out)) * LINE + 2 * PAD
        width = _width([title, *(t for t, _ in out)])
        self.parts.append(f'<rect class="box" x="{x:.1f}" y="{box_top:.1f}" '
                          f'width="{width:.1f}" height="{height:.1f}" rx="5"/>')
        self.parts.append(_text(x + PAD, box_top + PAD + 0.8 * LINE, title, 'title'))
        for i, (text, mark) in enumerate(out):
            cls = 'failed' if mark == 'failed' else f'out {mark}'.strip()
            self.parts.append(_text(x + PAD, box_top + PAD + (i + 1.8) * LINE, text, cls))
        self.parts.append('</g>')
        self.width = max(self.width, x + width)
        # The arrow: down the caller's stem, then right into this box.
        stem_x, stem_top = self.stems.get(depth - 1, self.stems[-1])
        middle = box_top + PAD + 0.4 * LINE
        self.arrows.append(
            f'<path class="arrow {kind}" data-index="{number}" '
            f'd="M{stem_x:.1f},{stem_top:.1f} V{middle:.1f} H{x - 1:.1f}" '
            f'marker-end="url(#head-{kind})"/>')
        self.stems[depth] = (x + 8.0, box_top + height)
        for deeper in [d for d in self.stems if d > depth]:
            del self.stems[deeper]
        self.y = box_top + height + GAP


def pass_header(graph: dict[str, Any]) -> str:
    """``loss mode (train), N=2 V=1, labels [0, 23] (int64, cpu), coarse [0, 2] ...``."""
    return (f'{graph["mode"]} mode ({"train" if graph["training"] else "eval"}), '
            f'N={graph["samples"]} V={graph["views"]}, labels {graph["labels"]}, '
            f'coarse {graph["coarse"]}')


def _pass_panel(graph: dict[str, Any]) -> str:
    layout = _Layout(graph)
    picture = layout.draw()
    error = (f'<p class="error" style="max-width:{layout.width:.0f}px">{graph["mode"]} mode '
             f'raised {html.escape(graph["error"])}</p>' if graph['error'] else '')
    count = sum(len(n['violations']) for n in graph['nodes']) + len(graph['violations'])
    return (f'<section class="pass" data-mode="{graph["mode"]}" data-violations="{count}">'
            f'<h2 style="max-width:{layout.width:.0f}px">{html.escape(pass_header(graph))}</h2>'
            f'{error}{picture}'
            '</section>')


def _legend() -> str:
    return ('<p class="legend">'
            f'<span><i class="swatch" style="background:{ARROW_COLOUR}"></i>a call, labelled '
            'with what was passed</span>'
            f'<span><i class="swatch" style="background:{LABEL_COLOUR}"></i>carries the labels '
            'or hierarchy(labels)</span>'
            f'<span><i class="swatch" style="background:{VIOLATION_COLOUR}"></i>forbidden by '
            'the contract (rule named)</span></p>')


def flow_section(flow: dict[str, Any]) -> str:
    """The two passes side by side, with the legend (an HTML fragment)."""
    panels = ''.join(_pass_panel(graph) for graph in flow['passes'])
    return f'<div id="trace">{_legend()}<div class="passes">{panels}</div></div>'


def _page(title: str, body: str) -> str:
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{STYLE}</style></head>'
            f'<body>{body}</body></html>\n')


def trace_html(flow: dict[str, Any]) -> str:
    """``epam-guard trace --html``: the data flow of one loss and one predict call."""
    body = (f'<h1>epam-guard trace</h1><p class="meta">{html.escape(flow["config"])} · '
            f'device {html.escape(flow["device"])}</p>{flow_section(flow)}')
    return _page(f'epam-guard trace {flow["config"]}', body)


def check_html(results: list[dict[str, Any]], meta: dict[str, Any],
               flow: dict[str, Any] | None) -> str:
    """``epam-guard check --html``: the results table; for a failing run, the data flow
    of the passes the checks recorded, with the failing checks' findings above it."""
    rows = []
    for result in results:
        findings = ''.join(f'<li>[{html.escape(f["rule"])}] {html.escape(f["message"])}</li>'
                           for f in result.get('findings', []))
        status = result['status']
        rows.append(f'<tr data-check="{html.escape(result["name"])}" data-status="{status}">'
                    f'<td>{html.escape(result["name"])}</td><td class="{status}">'
                    f'{status.upper()}</td><td>{result.get("seconds", 0.0):.2f}s</td>'
                    f'<td>{html.escape(result["verdict"])}'
                    + (f'<ul class="findings">{findings}</ul>' if findings else '')
                    + '</td></tr>')
    failed = [r['name'] for r in results if r['status'] in ('fail', 'error')]
    body = (f'<h1>epam-guard check</h1><p class="meta">{html.escape(str(meta.get("config")))}'
            f' · exit status {meta.get("exit_status")}</p>'
            '<table><tr><th>check</th><th>status</th><th>time</th><th>verdict</th></tr>'
            f'{"".join(rows)}</table>')
    if flow is not None:
        heading = (f'data flow of the passes {", ".join(failed)} recorded' if failed
                   else 'data flow of the passes the checks recorded')
        body += f'<h2>{html.escape(heading)}</h2>{flow_section(flow)}'
    return _page(f'epam-guard check {meta.get("config")}', body)


def write_trace(flow: dict[str, Any], html_path: Path | None,
                dot_path: Path | None) -> list[Path]:
    """Write the HTML and/or dot form of ``flow``; returns the paths written."""
    written = []
    if html_path is not None:
        html_path.write_text(trace_html(flow), encoding='utf-8')
        written.append(html_path)
    if dot_path is not None:
        dot_path.write_text(trace_dot(flow), encoding='utf-8')
        written.append(dot_path)
    return written


def write_check_html(path: Path, results: list[dict[str, Any]], meta: dict[str, Any],
                     event: dict[str, Any] | None) -> None:
    """``check --html``: the page, with the picture the model process sent (if it could)."""
    page = check_html(results, meta, (event or {}).get('flow'))
    if event is not None and event.get('flow') is None:
        page = page.replace('</body>', f'<p class="meta">no data flow: '
                                       f'{html.escape(str(event.get("reason")))}</p></body>')
    path.write_text(page, encoding='utf-8')


# ------------------------------------------------------------------ dot
def _dot(text: str) -> str:
    return text.replace('\\', '\\\\').replace('"', '\\"')


def trace_dot(flow: dict[str, Any]) -> str:
    """The same picture as Graphviz dot text: one cluster per pass, one node per call."""
    lines = ['digraph epam_guard_trace {', '  rankdir=TB;',
             '  node [shape=box, fontname="monospace", fontsize=10];',
             '  edge [fontname="monospace", fontsize=9];']
    for graph in flow['passes']:
        mode = graph['mode']
        lines += [f'  subgraph cluster_{mode} {{', f'    label="{_dot(pass_header(graph))}";',
                  f'    {mode}_root [label="the guard", shape=ellipse];']
        parents: dict[int, str] = {-1: f'{mode}_root'}
        for number, node in enumerate(graph['nodes']):
            name = f'{mode}_{number}'
            out = [line['text'] for line in node['returned'][:6]]
            if node['error']:
                out.append(f'!! {node["error"]}')
            box = '\\l'.join(_dot(_cut(t, 60)) for t in
                             [f'{node["module"]} · {node["class"]}', *out]) + '\\l'
            colour = (VIOLATION_COLOUR if node['violations'] else
                      LABEL_COLOUR if _carries(node) else ARROW_COLOUR)
            lines.append(f'    {name} [label="{box}", color="{colour}"];')
            label = [f'{node["method"]}('] + ['  ' + _cut(a['text'], 60) for a in node['args']]
            label += [')'] + [f'✗ [{v["title"]}] {v["message"]}' for v in node['violations']]
            parent = parents.get(node['depth'] - 1, parents[-1])
            text = '\\l'.join(_dot(line) for line in label) + '\\l'
            lines.append(f'    {parent} -> {name} [label="{text}", color="{colour}", '
                         f'fontcolor="{colour}"];')
            parents[node['depth']] = name
        lines.append('  }')
    lines.append('}')
    return '\n'.join(lines) + '\n'
