"""``.ci/run``: it runs the README's tier commands, and on a disk too small for one tox
environment it stops with one line before it installs anything.

The disk test runs the real script with a ``df`` on ``PATH`` that reports 100 MiB free,
and ``pip``, ``tox`` and ``apt-get`` that record being called: the script must exit
non-zero having called none of them.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / '.ci' / 'run'
TIER = re.compile(r'^pip install tox && tox -e (\w+)', re.M)


def test_ci_runs_the_readme_tier_commands_in_the_readme_order():
    readme = list(dict.fromkeys(TIER.findall((REPO / 'README.md').read_text('utf-8'))))
    ci = TIER.findall(SCRIPT.read_text('utf-8'))
    assert ci == ['guard', 'cpu', 'fork11', 'slow']
    assert readme == ci  # the README shows each, first in this order


def _stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f'#!/bin/sh\n{body}\n')
    path.chmod(0o755)


def test_a_disk_too_small_for_one_environment_stops_ci_with_one_line_before_installing(
        tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    calls = tmp_path / 'calls'
    # POSIX df -Pk: a header, then the file system with 100 MiB available.
    _stand_in(bin_dir, 'df', 'echo "Filesystem 1024-blocks Used Available Capacity Mounted"\n'
                             'echo "/dev/x 1000000 897600 102400 90% /"')
    for tool in ('pip', 'tox', 'apt-get', 'chromium'):
        _stand_in(bin_dir, tool, f'echo {tool} >> {calls}')
    env = {**os.environ, 'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
           'HOME': str(tmp_path / 'home')}
    done = subprocess.run(['bash', str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith('ci: not enough disk:'), done.stderr
    assert '100 MiB are free' in errors[0]
    assert not calls.exists(), calls.read_text()
