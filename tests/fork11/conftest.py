"""The fork fixture: a 1.1-API EPAM plugin (``myfork/epam_fork``) and its config.

Its classes take the reference names (``EPAMBackbone``, ``EPAMRecognizer``), so
it is only ever imported by the guard's own child process (through the CLI),
never into the test process, where the reference plugin may already be
registered.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
FORK = HERE / 'myfork'
CONFIG = HERE / 'configs' / 'fork_ntu60.py'


@pytest.fixture
def run_guard(tmp_path: Path, capsys: pytest.CaptureFixture) -> Any:
    """``run_guard(*extra)`` -> (exit status, JSON report, printed text) of one CLI run."""
    from epam_guard.cli import main

    def run(*extra: str) -> tuple[int, dict[str, Any], str]:
        report = tmp_path / 'report.json'
        code = main(['check', str(CONFIG), '--import-path', str(FORK), '--tier', 'fast',
                     '--batch-size', '2', '--json', str(report), *extra])
        captured = capsys.readouterr()
        assert 'Traceback' not in captured.out + captured.err, captured.err
        return code, json.loads(report.read_text()), captured.out + captured.err

    return run
