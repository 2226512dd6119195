"""A second fork, unlike the reference in everything it may be: one CLI run reports each
planted defect with its rule and nothing else, and the clean variant passes.

``epam-guard check tests/fork28/configs/fork28.py --import-path tests/fork28/myfork
--hierarchy tests/fork28/hierarchy52.json --tier fast``: 28 key points declared as
``backbone.pose_pathway.in_channels``, 52 fine / 7 coarse classes, 8 RGB / 32 pose frames
hard-coded in the backbone, 4 score keys fused by the fork's own ``AccMetric``. None of that
may show up as a finding; the planted defects (``--cfg-options``) must, each once.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from epam_guard.checks import names_in
from epam_guard.cli import main
from epam_guard.report.console import EXIT_FAILED, EXIT_OK

HERE = Path(__file__).resolve().parent
FORK, CONFIG = HERE / 'myfork', HERE / 'configs' / 'fork28.py'
HIERARCHY = HERE / 'hierarchy52.json'
FAST = names_in('fast')
BROKEN = ('model.leak_labels=True',
          'model.cls_head.defects=[cuda_state_space,cuda_in_loss,recreated_parameter]')
#: What the fork is, which no finding may blame: the guard's inputs follow it.
NOT_DEFECTS = ('17 channels', 'built for 28', 'with 17', 'must match the size of tensor',
               'exactly the keys', 'score dict', 'pred_score')


def run(tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, dict, str]:
    report = tmp_path / 'report.json'
    code = main(['check', str(CONFIG), '--import-path', str(FORK), '--hierarchy', str(HIERARCHY),
                 '--tier', 'fast', '--json', str(report), *extra])
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert 'Traceback' not in printed, printed
    return code, json.loads(report.read_text()), printed


def site(code: str) -> str:
    """``LINE  code`` of the fork head's line holding ``code``."""
    lines = (FORK / 'epam_fork28' / 'head.py').read_text().splitlines()
    return next(f'{number}  {code}' for number, line in enumerate(lines, 1)
                if line.strip() == code)


def found(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(check, section, message)`` of every finding of the run."""
    return [(result['name'], f['section'], f['message'])
            for result in report['results'] for f in result['findings']]


def test_the_clean_fork_passes_on_a_fresh_machine(tmp_path, capsys, monkeypatch):
    home = tmp_path / 'home'
    home.mkdir()
    monkeypatch.setenv('HOME', str(home))  # the guard's child process inherits it
    code, report, printed = run(tmp_path, capsys)
    assert code == EXIT_OK, printed
    assert [r['name'] for r in report['results'] if r['status'] == 'pass'] == FAST, printed
    recipe = report['recipe']
    assert (recipe['heatmap_channels'], recipe['rgb_channels']) == (28, 3)
    assert (recipe['rgb_frames'], recipe['pose_frames'], recipe['num_classes']) == (8, 32, 52)
    assert 'heat-map channels 28 from backbone.pose_pathway.in_channels' in recipe['sources']
    assert recipe['assumed'] == []
    assert "where the config's clip lengths work" in report['size_note']
    assert 'acc/RGBPose_1:1_top1' in report['results'][0]['details']['metrics']
    assert os.listdir(home) == []


def test_every_planted_defect_is_reported_once_with_its_rule_and_nothing_else(tmp_path,
                                                                              capsys):
    code, report, printed = run(tmp_path, capsys, '--cfg-options', *BROKEN)
    assert code == EXIT_FAILED, printed
    assert [r['name'] for r in report['results']] == FAST  # the run went on past the CUDA
    findings = found(report)
    cuda = [(check, section, message) for check, section, message in findings
            if 'hard-wired to CUDA' in message]
    # two call sites, one finding each, with the line of code
    assert [(section, message.split(' (')[0].split('head.py:')[1]) for _, section, message
            in cuda] == [('6', site('self.state_space = self.make_state_space().cuda()')),
                         ('6', site("weights = weights.cuda() if 'cuda_in_loss' in "
                                    'self.defects else weights.to(fine.device)'))], printed
    assert 'first while building the model' in cuda[0][2]
    rest = [item for item in findings if item not in cuda]
    by_rule = {(check, section) for check, section, _ in rest}
    # labels at inference: routing (§2) sees them arrive, structure (§3) sees them echoed,
    # label_blind (§7) sees predict depend on them (out-of-range labels make it raise);
    # the parameter re-created in forward: train_step sees it new after each step, first_pass
    # sees it appear in the first loss pass
    assert by_rule == {('routing', '2'), ('structure', '3'), ('label_blind', '7'),
                       ('train_step', '6'), ('first_pass', '6')}, printed
    blind = [message for check, _, message in rest if check == 'label_blind']
    assert blind == ['predict raised ValueError: labels [52, 52, -2, -2, 54, 54, -4, -4] are '
                     'outside [0, 52) when the data samples carried out of range labels, and ran '
                     "with the batch's own: predict reads the labels"], printed
    assert all(message.startswith(('predict mode', 'tensor mode'))
               for check, _, message in rest if check in ('routing', 'structure')), printed
    appeared = [message for check, _, message in rest if check == 'first_pass']
    assert appeared and all(m.startswith('cls_head gained rgb_memory') for m in appeared), printed
    recreated = [message for check, _, message in rest if check == 'train_step']
    assert recreated == ['cls_head.rgb_memory is a new nn.Parameter after each forward: it is '
                         're-created in forward(), so it never trains and DDP stops at step 2; '
                         'create it once in __init__ and update .data in place, or register it '
                         'as a buffer'], printed
    assert not [m for _, _, m in findings if any(text in m for text in NOT_DEFECTS)], printed
    assert report['root_cause'] is None
