"""A fresh machine passes the main job: ``HOME=$(mktemp -d) epam-guard check`` on the default
config, all nine checks, and the home stays as empty as it was.

Library caches and config folders that third-party code creates on first use (matplotlib,
YAPF, fontconfig, torch) are not the model's stray writes: the guard points them into its
temporary folder (``epam_guard.probe.isolation.library_homes``) and says what was created.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from epam_guard.checks import CHECKS


@pytest.mark.slow
def test_all_nine_checks_pass_with_an_empty_home_and_leave_it_empty(tmp_path: Path):
    home, report = tmp_path / 'home', tmp_path / 'guard.json'
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith('XDG_') and key not in ('MPLCONFIGDIR', 'TORCH_HOME')}
    done = subprocess.run([sys.executable, '-m', 'epam_guard.cli', 'check', '--json',
                           str(report)], env={**env, 'HOME': str(home)}, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(report.read_text())
    assert [(r['name'], r['status']) for r in results['results']] == \
        [(name, 'pass') for name in CHECKS], done.stdout
    assert os.listdir(home) == [], sorted(str(p) for p in home.rglob('*'))
    # what the libraries made instead is said, with where it would have gone
    made = {**results['library_homes'],
            **{k: v for r in results['results'] for k, v in
               r['details'].get('library_homes', {}).items()}}
    assert made and all(entry['instead_of'].startswith(str(home)) for entry in made.values())
