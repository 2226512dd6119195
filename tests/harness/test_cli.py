"""The ``epam-guard`` command line: exit codes, rows, JSON, one-line diagnoses."""
from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from epam_guard.cli import main
from epam_guard.report.console import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE

FAST = ['--batch-size', '2', '--only', 'structure,routing']


def test_check_passes_on_the_default_config(capsys, tmp_path):
    # In process: the supervised run of a passing config, its JSON included, is the clean
    # forks' (tests/fork11, tests/fork28), whose plugins this process may not import.
    out, junit = tmp_path / 'results.json', tmp_path / 'junit.xml'
    assert main(['check', '--in-process', *FAST, '--json', str(out), '--junit',
                 str(junit)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert 'PASS  structure' in printed and 'PASS  routing' in printed
    assert '2 passed, 0 failed' in printed
    payload = json.loads(out.read_text())
    assert [r['name'] for r in payload['results']] == ['structure', 'routing']
    assert all(r['status'] == 'pass' for r in payload['results'])
    assert set(payload['timings']) >= {'imports', 'config', 'build', 'checks', 'total'}
    assert (payload['contract'], payload['contract_reason']) == (
        'epam', 'EPAMBackbone.forward takes gt, gt_coarse')
    assert '  contract: epam (EPAMBackbone.forward takes gt, gt_coarse)' in printed
    suite = ElementTree.parse(junit).getroot()
    assert suite.get('tests') == '2' and suite.get('failures') == '0'
    assert [case.get('name') for case in suite.iter('testcase')] == ['structure', 'routing']
    assert {p.get('name'): p.get('value') for p in suite.iter('property')} == {'contract': 'epam'}


HARNESS_TESTS = Path(__file__).parent
TINY_GENERIC = HARNESS_TESTS / 'configs' / 'tiny_rgbpose.py'


def test_a_generic_model_is_judged_by_mmaction2_and_says_what_it_does_not_run(capsys,
                                                                               tmp_path):
    out = tmp_path / 'results.json'
    assert main(['check', str(TINY_GENERIC), '--import-path', str(HARNESS_TESTS), '--in-process',
                 '--batch-size', '2', '--only', 'structure,label_blind',
                 '--json', str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert ("  contract: mmaction2 (the backbone's forward takes no labels and no label "
            'hierarchy is given)') in printed
    assert 'SKIP  structure' in printed and 'not run: the mmaction2 contract has no §3' in printed
    assert 'PASS  label_blind' in printed
    assert '1 passed, 0 failed, 1 not run (structure)' in printed
    payload = json.loads(out.read_text())
    assert payload['contract'] == 'mmaction2'
    assert [r['status'] for r in payload['results']] == ['skip', 'pass']


def test_an_unknown_contract_profile_is_a_one_line_diagnosis(capsys):
    assert main(['check', '--in-process', '--only', 'routing', '--cfg-options',
                 'epam_guard.contract=mmaction']) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0, err
    assert "epam_guard.contract must be one of mmaction2, epam, but got 'mmaction'" in err


def test_missing_config_is_a_one_line_diagnosis(capsys, tmp_path):
    assert main(['check', str(tmp_path / 'nope.py')]) == EXIT_UNUSABLE
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0
    assert 'nope.py does not exist' in err


def test_unknown_check_name(capsys):
    assert main(['check', '--only', 'structure,bogus']) == EXIT_UNUSABLE
    err = capsys.readouterr().err
    assert 'unknown check(s) bogus' in err and 'structure' in err


def test_cuda_without_a_gpu(capsys):
    torch = pytest.importorskip('torch')
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is visible here')
    assert main(['check', '--in-process', '--device', 'cuda']) == EXIT_UNUSABLE
    assert 'no CUDA device is visible' in capsys.readouterr().err


def test_bad_cfg_option(capsys):
    assert main(['check', '--cfg-options', 'no_equals_sign']) == EXIT_UNUSABLE
    assert 'KEY=VALUE' in capsys.readouterr().err


def test_failed_check_exits_1(capsys, tmp_path):
    # lr=0: the optimizer step cannot lower the loss, so train_step must fail.
    junit = tmp_path / 'junit.xml'
    code = main(['check', '--in-process', '--batch-size', '2', '--only', 'train_step',
                 '--junit', str(junit), '--cfg-options', 'optim_wrapper.optimizer.lr=0.0'])
    assert code == EXIT_FAILED
    assert 'FAIL  train_step' in capsys.readouterr().out
    failure = ElementTree.parse(junit).getroot().find('testcase/failure')
    assert failure is not None and 'CONTRACT §6' in failure.get('message', '')


def test_trace_shows_where_the_labels_go(capsys):
    assert main(['trace', '--in-process', '--batch-size', '2']) == EXIT_OK
    printed = capsys.readouterr().out
    loss, predict = printed.split('\n\npredict mode')
    assert 'backbone.forward(' in loss and 'gt=[0, 23] (int64, cpu)  <- labels' in loss
    assert '<- coarse labels' in loss
    assert 'cls_head.loss(feats=' in loss
    assert '<- labels' not in predict


def test_summary_prints_parts(capsys):
    assert main(['summary', '--in-process']) == EXIT_OK
    printed = capsys.readouterr().out
    for part in ('backbone.rgb_stream', 'backbone.pose_stream', 'cls_head', 'total'):
        assert part in printed


def test_default_config_is_packaged():
    from epam_guard.model.context import default_config_path

    path = default_config_path()
    assert path.name == 'epam_ntu60.py' and Path(path).is_file()


def test_labels_carried_the_mmaction_1_0_way(capsys):
    # gt_labels.item (MMAction2 1.0/1.1 forks) instead of gt_label (1.2).
    assert main(['check', '--in-process', '--batch-size', '2', '--only', 'routing,labels',
                 '--label-api', 'gt_labels']) == EXIT_OK
    assert '2 passed, 0 failed' in capsys.readouterr().out


def test_both_label_apis_read_back():
    from epam_guard.model.batch import make_data_sample, read_label

    old, new = make_data_sample(7, 'gt_labels'), make_data_sample(7, 'gt_label')
    assert 'gt_label' not in old and old.gt_labels.item.tolist() == [7]
    assert read_label(old) == read_label(new) == 7


def test_verbose_shows_the_evidence_of_a_passing_check(capsys):
    assert main(['check', '--in-process', *FAST[:2], '--only', 'eval_purity', '-v']) == EXIT_OK
    printed = capsys.readouterr().out
    assert 'PASS  eval_purity' in printed
    assert 'compared.predict: {views: 2, inputs: [heatmap_imgs, imgs], ' \
           'parameters_and_buffers: ' in printed
