"""Check ``runner``: a short real MMEngine Runner with the user's config."""
from __future__ import annotations

import pytest
from launch_variants import shrink

from epam_guard.checks import runner
from epam_guard.engine import run_check
from epam_guard.result import Status


def managers() -> dict[str, list[str]]:
    """Names of MMEngine's global instances (loggers, hubs, visualizers, scopes), by class."""
    return {cls.__name__: list(cls.__dict__['_instance_dict'])
            for cls in runner._manager_classes() if cls.__dict__.get('_instance_dict')}


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
