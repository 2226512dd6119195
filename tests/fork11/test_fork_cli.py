"""One CLI run per fork variant: the clean fork passes; each planted defect is reported
by the right check with the right rule.

``epam-guard check tests/fork11/configs/fork_ntu60.py --import-path tests/fork11/myfork
--tier fast``: no environment variables, no shims. The same tests run on MMAction2 1.2
(``tox -e cpu``) and on 1.1.0 (``tox -e fork11``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from epam_guard.checks import names_in
from epam_guard.report.console import EXIT_FAILED, EXIT_OK

FORK = Path(__file__).resolve().parent / 'myfork'
CONFIG = Path(__file__).resolve().parent / 'configs' / 'fork_ntu60.py'

FAST = tuple(names_in('fast'))


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result['name']: result for result in report['results']}


def findings(result: dict[str, Any], section: str) -> list[str]:
    """Messages of ``result``'s findings under CONTRACT section ``section``."""
    return [f['message'] for f in result['findings'] if f['section'] == section]


def test_the_clean_fork_passes_at_its_own_clip_lengths(run_guard):
    code, report, printed = run_guard()
    results = by_name(report)
    assert code == EXIT_OK, printed
    assert sorted(results) == sorted(FAST)
    assert all(result['status'] == 'pass' for result in results.values()), printed
    # The fork hard-codes 16 RGB / 48 pose frames: tiny clips fail inside it, so the
    # guard keeps the clip lengths and shrinks space only, and says so.
    assert (report['recipe']['rgb_frames'], report['recipe']['pose_frames']) == (16, 48)
    assert report['recipe']['crop'] == 64 and report['recipe']['keep_time'] is True
    assert 'config\'s clip lengths work' in report['size_note']
    assert report['hierarchy'] == 'config epam_guard.hierarchy'
    assert 'hierarchy: config epam_guard.hierarchy' in printed


def test_every_planted_label_routing_and_state_defect_is_reported(run_guard):
    code, report, printed = run_guard(
        '--cfg-options', 'model.defect=loss_kwargs',
        'model.cls_head.defect=[batch_min_shift,coarse_floordiv8,recreated_prototype]')
    results = by_name(report)
    assert code == EXIT_FAILED, printed
    # kwargs to cls_head.loss: routing, §2.
    routing = findings(results['routing'], '2')
    assert any('cls_head.loss received gt, gt_coarse' in m for m in routing), printed
    # `x // 8` as the coarse mapping: labels, §5, at the coarse loss.
    labels = findings(results['labels'], '5')
    assert any('cls_head.loss_coarse' in m and 'hierarchy(labels)' in m for m in labels), printed
    # "subtract 1 when the batch has no 0": labels, §5, found by dropping a sample.
    assert any('dropping the first sample' in m for m in labels), printed
    # A prototype nn.Parameter made anew in forward: train_step, §6, named.
    state = findings(results['train_step'], '6')
    assert any('cls_head.rgb_memory' in m for m in state), printed
    # Nothing else is blamed: the structure is the contract's.
    assert results['structure']['status'] == 'pass', printed


def test_cuda_hard_wired_in_a_loss_is_a_state_defect(run_guard):
    code, report, printed = run_guard('--cfg-options', 'model.cls_head.defect=cuda_loss')
    results = by_name(report)
    assert code == EXIT_FAILED, printed
    # The features run at the fork's clip lengths; only its loss is broken: its one call
    # site is one finding (the first check reports it) and every check runs past it.
    assert report['recipe']['rgb_frames'] == 16, printed
    state = [m for result in results.values() for m in findings(result, '6')]
    assert [m for m in state if 'hard-wired to CUDA at' in m and 'head.py:' in m] == state, \
        printed
    assert len(state) == 1 and sorted(results) == sorted(FAST), printed
    assert [name for name, r in results.items() if r['status'] != 'pass'] == ['structure']


def test_the_fork_and_the_reference_plugin_together_are_one_line(capsys, tmp_path):
    from epam_guard.cli import main
    from epam_guard.report.console import EXIT_UNUSABLE

    both = tmp_path / 'both.py'
    both.write_text(f'_base_ = [{str(CONFIG)!r}]\n'
                    "custom_imports = dict(imports=['epam', 'epam_fork'])\n")
    assert main(['check', str(both), '--import-path', str(FORK)]) == EXIT_UNUSABLE
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and 'Traceback' not in error
    assert 'EPAMBackbone is registered twice in the model registry (first by epam.backbone)' \
        in error
    assert 'import only one of the packages that define it in custom_imports' in error
