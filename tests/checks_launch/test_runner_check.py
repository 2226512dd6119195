"""Check ``runner``: a short real MMEngine Runner with the user's config."""
from __future__ import annotations

import pytest
from launch_variants import (
    REFUSAL_LINE,
    LaunchTestNotesHook,
    LaunchTestTrainRefusingBackbone,
    shrink,
)

from epam_guard.checks import runner
from epam_guard.probe.isolation import manager_instances as managers
from epam_guard.report.result import Status
from epam_guard.run.engine import run_check


@pytest.mark.slow
def test_passes_on_the_default_config(launch_context, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the cwd is watched for stray writes: start from nothing
    before = managers()
    result = run_check(launch_context, 'runner', runner.check)
    assert result.status is Status.PASS, f'{result.verdict}\n{result.details}'
    details = result.details
    assert details['save_best'] == ['acc/RGBPose_1:1_top1']
    assert 'acc/RGBPose_1:1_top1' in details['metrics']
    assert details['train_iters'] == 1
    assert sorted(details['checkpoints']) == ['best_acc_RGBPose_1:1_top1_epoch_1.pth',
                                              'epoch_1.pth']
    assert any(log.endswith('.log') for log in details['logs'])
    assert list(tmp_path.iterdir()) == []
    assert managers() == before  # the run's logger, hub and visualizer are gone
    assert details['watched'][0] == str(tmp_path)
    # A torch that refuses MMEngine checkpoints by default is a warning, not part of the verdict.
    refused = 'refuses' in details['default_torch_load']
    assert [('weights_only' in w) for w in result.warnings] == ([True] if refused else [])
    assert 'warning' not in result.verdict


def test_short_loop_keeps_the_loop_type():
    assert runner.short_loop(dict(type='EpochBasedTrainLoop', max_epochs=50, val_interval=5)
                             ) == dict(type='EpochBasedTrainLoop', max_epochs=1, val_begin=1,
                                       val_interval=1)
    assert runner.short_loop(dict(type='IterBasedTrainLoop', max_iters=9000))['max_iters'] == 1
    assert runner.short_loop(dict(by_epoch=False, max_iters=10))['type'] == 'IterBasedTrainLoop'


@pytest.mark.slow
def test_a_save_best_key_no_metric_produces(edited):
    def variant(cfg):
        shrink(cfg)  # the defect is in the hooks, not the sizes: keep the run to seconds
        cfg.default_hooks.checkpoint.save_best = 'acc/RGBPose_1:1_top_1'

    result = run_check(edited(variant), 'runner', runner.check)
    assert result.status is Status.FAIL, result.verdict
    assert result.rules == ['4']
    assert result.verdict.startswith(
        "[CONTRACT §4 head] CheckpointHook(save_best='acc/RGBPose_1:1_top_1') waits for a "
        'metric validation never produces; it reported acc/rgb_top1, ')
    assert "did you mean 'acc/RGBPose_1:1_top1'?" in result.verdict
    assert result.details['error'].startswith("KeyError: 'acc/RGBPose_1:1_top_1'")


@pytest.mark.slow
def test_a_users_output_folder_and_checkpoint_are_left_alone(edited, tmp_path, monkeypatch):
    experiment = tmp_path / 'experiment'
    experiment.mkdir()
    scalars = experiment / 'scalars.json'
    scalars.write_bytes(b'{"loss": 1.5, "step": 100}\n')
    refused = experiment / 'epoch_12.pth'
    refused.write_bytes(b'not a checkpoint')  # loading it would fail the run
    (tmp_path / 'cwd').mkdir()
    monkeypatch.chdir(tmp_path / 'cwd')

    def variant(cfg):
        shrink(cfg)
        cfg.visualizer.vis_backends = [dict(type='LocalVisBackend', save_dir=str(experiment))]
        cfg.load_from = str(refused)
        cfg.resume = True

    result = run_check(edited(variant), 'runner', runner.check)
    assert result.status is Status.PASS, f'{result.verdict}\n{result.details}'
    assert result.verdict.endswith("; ignored load_from, resume (the real run's checkpoint is "
                                   'not read)')
    assert scalars.read_bytes() == b'{"loss": 1.5, "step": 100}\n'
    assert sorted(p.name for p in experiment.iterdir()) == ['epoch_12.pth', 'scalars.json']
    assert list((tmp_path / 'cwd').iterdir()) == []
    swapped = result.details['swapped']
    assert swapped['redirected']['visualizer.vis_backends.0.save_dir'] == str(experiment)
    assert swapped['ignored'] == {'load_from': str(refused), 'resume': True}
    assert str(experiment) in result.details['watched']  # named in the config: watched
    assert any(log.endswith('scalars.json') for log in result.details['logs'])


@pytest.mark.slow
def test_a_runner_error_is_reported_with_its_line_and_writes_outside_are_blamed(
        edited, tmp_path, monkeypatch):
    notes = tmp_path / 'notes'
    notes.mkdir()
    monkeypatch.chdir(tmp_path)

    def variant(cfg):
        shrink(cfg)
        cfg.model.backbone.type = LaunchTestTrainRefusingBackbone.__name__
        cfg.custom_hooks = [dict(type=LaunchTestNotesHook.__name__,
                                 notes=str(notes / 'run.txt'))]

    result = run_check(edited(variant), 'runner', runner.check)
    assert result.status is Status.FAIL, result.verdict
    assert result.rules == ['6']
    first, stray = (f.message for f in result.findings)
    assert first == ('the Runner failed during training iteration 1: RuntimeError: this '
                     f'backbone refuses to train (launch_variants.py:{REFUSAL_LINE})')
    assert 'validation never reported' not in result.verdict
    assert stray == f"the run wrote outside its temporary folder: ['{notes / 'run.txt'}']"
    assert (notes / 'run.txt').exists()  # the hook did write it: positive evidence
