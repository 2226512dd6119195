"""The launch tier (``pipeline``, ``runner``, ``ddp``) on each config MMAction2 ships.

Each check runs the config's own pipelines, Runner and DDP on synthetic data in
the format of its datasets (Kinetics' ``VideoDataset`` videos, NTU's
``PoseDataset`` pickles with or without videos): a correct published model
passes with no finding. Seconds per config are what ``scripts/launch_tier_times.py``
prints, not asserted here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmaction_configs import IDS, mmaction_config

from epam_guard.checks import names_in
from epam_guard.cli import EXIT_OK, main

pytestmark = pytest.mark.slow
LAUNCH = names_in('launch')


@pytest.mark.parametrize('config_id', IDS)
def test_the_launch_tier_passes_with_no_finding(config_id: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    config = mmaction_config(config_id)
    report = tmp_path / 'report.json'
    code = main(['check', str(config.path), '--tier', 'launch', '--json', str(report),
                 *config.cli_args])
    printed = ''.join(capsys.readouterr())
    assert 'Traceback' not in printed, printed
    results = json.loads(report.read_text())['results']
    assert [(r['name'], r['status'], r['findings']) for r in results] == [
        (name, 'pass', []) for name in LAUNCH], printed
    assert code == EXIT_OK, printed
