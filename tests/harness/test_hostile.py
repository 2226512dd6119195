"""Hostile input: each case ends in a one-line diagnosis and the documented exit code.

Exit 2: the config, the arguments or the device are unusable (before any check).
Exit 1: a check failed, with the rule and the evidence. Never a bare traceback.
"""
from __future__ import annotations

import pytest
from epam_guard.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, main
from epam_guard.engine import run_checks
from epam_guard.result import Status
from guard_variants import overrides

POSE_SAMPLER = 'train_dataloader.dataset.pipeline.0.clip_len.Pose'


def unusable(capsys, *argv: str) -> str:
    """Run the CLI, expect exit 2 and exactly one line on stderr; return it."""
    assert main(['check', *argv]) == EXIT_UNUSABLE
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert 'Traceback' not in captured.err + captured.out
    return lines[0]


def test_config_that_is_a_folder(capsys, tmp_path):
    assert 'is not a file' in unusable(capsys, str(tmp_path))


def test_config_with_a_syntax_error(capsys, tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('model = dict(type=\n')
    assert 'cannot be parsed: SyntaxError' in unusable(capsys, str(bad))


def test_config_without_a_model(capsys, tmp_path):
    empty = tmp_path / 'empty.py'
    empty.write_text('optim_wrapper = dict()\n')
    assert 'has no `model` dict to build' in unusable(capsys, str(empty))


def test_custom_import_that_fails(capsys, tmp_path):
    cfg = tmp_path / 'fork.py'
    cfg.write_text("custom_imports = dict(imports=['no_such_epam_fork'])\nmodel = dict()\n")
    line = unusable(capsys, str(cfg))
    assert 'custom_imports failed' in line and 'no_such_epam_fork' in line
    assert '--import-path' in line


def test_unregistered_type_names_the_fix(capsys):
    line = unusable(capsys, '--cfg-options', 'model.backbone.type=NoSuchBackbone')
    assert "'NoSuchBackbone' is not registered" in line
    assert "custom_imports ['epam'] does not register it" in line
    assert "custom_imports = dict(imports=['epam', 'your_package'])" in line


def test_heatmap_channels_that_do_not_match_the_backbone(capsys):
    line = unusable(capsys, '--cfg-options', 'model.backbone.pose_stream.in_channels=19')
    assert 'the pipeline makes 17 heat-map channels' in line and 'in_channels is 19' in line


def test_head_channels_that_do_not_match_the_backbone(capsys):
    code = main(['check', '--batch-size', '2', '--only', 'structure',
                 '--cfg-options', 'model.cls_head.in_channels=[2048,512]'])
    assert code == EXIT_FAILED
    printed = capsys.readouterr().out
    assert 'FAIL  structure' in printed and '2048' in printed


def test_pose_clip_length_the_model_cannot_take(capsys):
    line = unusable(capsys, '--cfg-options', f'{POSE_SAMPLER}=40')
    assert 'pose clip length 40 is not a multiple of the RGB clip length 16' in line


def test_heatmap_size_the_model_cannot_take(capsys):
    line = unusable(capsys, '--cfg-options',
                    'train_dataloader.dataset.pipeline.7.scaling=0.5')
    assert 'crop 224 and heat map 112 do not meet' in line


def test_hierarchy_that_disagrees_with_the_head(capsys):
    line = unusable(capsys, '--cfg-options', 'model.cls_head.num_classes=50')
    assert 'config model.hierarchy: num_classes is 60 but the head has 50' in line


def test_batch_size_zero(capsys):
    assert '--batch-size: must be at least 1, but got 0' in unusable(capsys, '--batch-size', '0')


def test_batch_of_one_passes(capsys):
    assert main(['check', '--batch-size', '1', '--only', 'structure,routing,train_step']) \
        == EXIT_OK


def test_inf_in_the_inputs_is_traced_to_the_preprocessor(capsys):
    code = main(['check', '--batch-size', '2', '--only', 'train_step', '--cfg-options',
                 'model.data_preprocessor.preprocessors.imgs.std=[0,0,0]'])
    assert code == EXIT_FAILED
    assert "inputs['imgs'] already holds Inf after the data preprocessor" in \
        capsys.readouterr().out


def test_nan_made_by_the_model_names_the_first_module(make_context):
    from epam_guard.checks import CHECKS
    from epam_guard.engine import run_check

    ctx = make_context(overrides(head='GuardTestNaNWeightsHead'))
    result = run_check(ctx, 'train_step', CHECKS['train_step'])
    assert result.status is Status.FAIL
    assert 'cls_head.fc_pose (Linear) is the first module to output NaN' in result.verdict


def test_a_check_that_raises_does_not_stop_the_others(make_context):
    # Hangs and crashes are the supervisor's (tests/hostile); in process, an exception
    # is that check's error and the next check still runs.
    from epam_guard.checks import CHECKS

    ctx = make_context()

    def raises(_ctx):
        raise RuntimeError('boom')

    results = run_checks(ctx, available={'raises': raises, 'eval_purity': CHECKS['eval_purity']})
    assert [r.status for r in results] == [Status.ERROR, Status.PASS]
    assert results[0].verdict.startswith('RuntimeError: boom (test_hostile.py:')


@pytest.mark.parametrize('argv', [['check', '--size', 'huge'], ['nonsense']])
def test_bad_arguments_exit_2(capsys, argv):
    assert main(argv) == EXIT_UNUSABLE
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
