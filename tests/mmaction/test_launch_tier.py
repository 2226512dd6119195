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
from epam_guard.cli import main
from epam_guard.report.console import EXIT_OK

pytestmark = pytest.mark.slow
LAUNCH = names_in('launch')
#: ``ddp`` on two kinds and dataset types (a GCN on PoseDataset, a 2-D model on VideoDataset):
#: the whole tier on all six configs takes more than 10 minutes on a 2-core CPU.
DDP_ON = ('stgcn', 'tsn')


def assert_launch_passes(config_id: str, checks: list[str], tmp_path: Path,
           capsys: pytest.CaptureFixture) -> None:
    """``epam-guard check CONFIG --only CHECKS`` passes every check with no finding."""
    config = mmaction_config(config_id)
    report = tmp_path / 'report.json'
    code = main(['check', str(config.path), '--only', ','.join(checks), '--json', str(report),
                 *config.cli_args])
    printed = ''.join(capsys.readouterr())
    assert 'Traceback' not in printed, printed
    results = json.loads(report.read_text())['results']
    assert [(r['name'], r['status'], r['findings']) for r in results] == [
        (name, 'pass', []) for name in checks], printed
    assert code == EXIT_OK, printed


@pytest.mark.parametrize('config_id', IDS)
def test_pipeline_and_runner_pass_with_no_finding(config_id: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    assert_launch_passes(config_id, [name for name in LAUNCH if name != 'ddp'], tmp_path, capsys)


@pytest.mark.parametrize('config_id', DDP_ON)
def test_ddp_passes_with_no_finding(config_id: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    assert_launch_passes(config_id, ['ddp'], tmp_path, capsys)
