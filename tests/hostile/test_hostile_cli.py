"""The real ``epam-guard`` on hostile models: every run ends in a report, nothing is left behind.

Each test starts the CLI as a user would (a subprocess) on a backbone that
segfaults, exits, spins or sleeps in training passes (``hostile_models.py``).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


def guard_command(mode: str, *extra: str) -> list[str]:
    return [sys.executable, '-m', 'epam_guard', 'check', '--import-path', str(HERE),
            '--batch-size', '2', '--only', 'structure,summary', '--cfg-options',
            'custom_imports.imports=[epam,hostile_models]',
            'model.backbone.type=GuardHostileBackbone', f'model.backbone.hostile={mode}', *extra]


def run_guard(mode: str, tmp_path: Path, *extra: str) -> tuple[int, list[str], dict]:
    report = tmp_path / 'report.json'
    done = subprocess.run(guard_command(mode, '--json', str(report), *extra), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    return done.returncode, lines, json.loads(report.read_text())


def test_a_segfault_is_reported_with_the_line_and_the_other_checks_run(tmp_path):
    code, lines, report = run_guard('segfault', tmp_path)
    assert code == 1
    structure, summary = report['results']
    assert structure['status'] == 'error'
    assert 'the model process was killed by SIGSEGV (segmentation fault) in ' in \
        structure['verdict']
    assert 'hostile_models.py' in structure['verdict']
    assert summary['status'] == 'pass'
    assert any(line.startswith('  ERROR structure') for line in lines)


def test_os_exit_in_model_code_is_no_silent_success(tmp_path):
    code, lines, report = run_guard('os_exit', tmp_path)
    assert code == 1
    assert report['results'][0]['verdict'] == (
        'the model process exited with status 0 before finishing (os._exit in model code?)')
    assert lines[-1] == '1 passed, 1 failed (structure)'


def test_a_spinning_forward_is_stopped_at_the_timeout_with_its_stack(tmp_path):
    start = time.monotonic()
    code, _, report = run_guard('spin', tmp_path, '--timeout', '15')
    assert time.monotonic() - start < 150  # two stops of 15 s, three start-ups
    assert code == 1
    verdict = report['results'][0]['verdict']
    assert verdict.startswith('did not finish within 15 s and was stopped; it was in ')
    assert 'hostile_models.py' in verdict and 'in misbehave' in verdict
    assert report['results'][1]['status'] == 'pass'


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_process_and_removes_the_temporary_folders(tmp_path, signum):
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    guard = subprocess.Popen(guard_command('sleep', '--size', 'ntu'), cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, 'TMPDIR': str(tmp)})
    assert guard.stdout is not None
    header = [guard.stdout.readline() for _ in range(2)]  # the second line comes when built
    assert header[1].startswith('  N=2 V=5'), header
    descendants = psutil.Process(guard.pid).children(recursive=True)
    assert descendants  # the model process is running
    time.sleep(1)  # structure's first pass reaches the sleeping forward
    guard.send_signal(signum)
    out, err = guard.communicate(timeout=30)
    assert guard.returncode == 128 + signum
    assert err.strip().splitlines()[-1] == (
        f'epam-guard: error: interrupted during structure ({signal.Signals(signum).name})')
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in descendants)
    assert list(tmp.iterdir()) == []


def test_the_model_process_dies_with_a_guard_killed_outright(tmp_path):
    """SIGKILL to ``epam-guard`` (no handler runs): its model process, which armed its
    parent-death signal as its first act, goes with it at once."""
    guard = subprocess.Popen(guard_command('sleep'), cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while not workers and time.monotonic() < deadline:
            workers = psutil.Process(guard.pid).children()
            time.sleep(0.05)
        assert workers, 'the model process never started'
        guard.kill()
        guard.wait()
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == [], f'left running after SIGKILL to epam-guard: {alive}'
    finally:
        if guard.poll() is None:
            guard.kill()
            guard.wait()
