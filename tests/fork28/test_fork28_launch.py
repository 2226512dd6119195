"""The 28-key-point fork through the launch tier: its pipelines, Runner and DDP run on synthetic
data with its own split names (``train``/``val``), 28 key points and 52 classes, and pass.

(Before the launch data followed the config, the synthetic pickle had NTU's ``xsub_*`` splits
and 17 key points, so the fork's datasets could not be built.)
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from epam_guard.checks import names_in
from epam_guard.cli import main
from epam_guard.report.console import EXIT_OK

HERE = Path(__file__).resolve().parent
FORK, CONFIG = HERE / 'myfork', HERE / 'configs' / 'fork28.py'


@pytest.mark.slow
def test_the_clean_fork_passes_the_launch_tier_on_its_own_data(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture
                                                               ) -> None:
    report = tmp_path / 'report.json'
    code = main(['check', str(CONFIG), '--import-path', str(FORK), '--hierarchy',
                 str(HERE / 'hierarchy52.json'), '--tier', 'launch', '--json', str(report)])
    printed = ''.join(capsys.readouterr())
    results = {r['name']: r for r in json.loads(report.read_text())['results']}
    assert code == EXIT_OK and list(results) == names_in('launch'), printed
    assert all(r['status'] == 'pass' for r in results.values()), printed
    pipeline = results['pipeline']['details']
    assert pipeline['data'].startswith('synthetic PoseDataset: ')
    assert pipeline['splits']['train']['sample']['heatmap_imgs'].startswith('(1, 28, ')
    assert 'acc/RGBPose_1:1_top1' in results['runner']['details']['metrics']
