"""``epam-guard trace --html`` on the fork: its own classes, drawn from what was recorded."""
from __future__ import annotations

from pathlib import Path

from epam_guard.cli import main
from epam_guard.report.console import EXIT_OK

HERE = Path(__file__).resolve().parent


def test_the_forks_modules_appear_under_their_own_names(tmp_path, capsys):
    page = tmp_path / 'trace.html'
    code = main(['trace', str(HERE / 'configs' / 'fork_ntu60.py'), '--import-path',
                 str(HERE / 'myfork'), '--batch-size', '2', '--html', str(page)])
    out = capsys.readouterr()
    assert code == EXIT_OK, out.err
    text = page.read_text()
    # The fork registers its classes under the reference names; the picture shows its own.
    for name in ('ForkRecognizer', 'ForkBackbone', 'EPAMForkHead', 'RenovationLoss',
                 'HierarchyLoss'):
        assert f'data-class="{name}"' in text, name
    assert 'data-module="backbone.rgb"' in text and 'data-module="backbone.pose"' in text
    assert 'class="violation"' not in text
