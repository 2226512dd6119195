"""``epam_guard.trace.calls``: calls shown as they were passed, tuples element by element.

The formatting is tested on calls recorded from tiny modules (milliseconds);
one test runs the real ``epam-guard trace | head -3`` to prove that a reader
closing the pipe early ends the command quietly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from epam_guard.probe.recording import CallRecorder, record
from epam_guard.trace.calls import MAX_ELEMENTS, format_call

FINE = torch.tensor([0, 23])
COARSE = torch.tensor([0, 2])


class Backbone(nn.Module):
    def forward(self, imgs: torch.Tensor, gt: torch.Tensor | None = None,
                gt_coarse: torch.Tensor | None = None) -> tuple:
        wide = torch.zeros(imgs.shape[0], 432, 4, 2, 2)
        return wide, wide, wide.clone(), wide.clone(), gt, gt_coarse


class Head(nn.Module):
    def forward(self, x: tuple) -> dict:
        return {f'loss_{i}': x[0].sum() for i in range(MAX_ELEMENTS + 2)}

    def loss(self, feats: tuple, data_samples: list) -> dict:
        return self(feats)

    def predict(self, feats: tuple, data_samples: list) -> list:
        for sample in data_samples:
            sample.set_field(torch.zeros(60), 'pred_score')
        return data_samples


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.cls_head = Head()


def recorded(run) -> CallRecorder:
    model = Model()
    with CallRecorder(model) as recorder:
        run(model)
    return recorder


def test_the_backbone_tuple_is_shown_element_by_element_with_label_values():
    recorder = recorded(lambda m: m.backbone(torch.zeros(2, 3), FINE, COARSE))
    text = format_call(recorder.of('backbone')[0], FINE, COARSE)
    lines = text.splitlines()
    assert lines[0] == ('  backbone.forward(imgs=(2, 3) float32, '
                        'gt=[0, 23] (int64, cpu)  <- labels, '
                        'gt_coarse=[0, 2] (int64, cpu)  <- coarse labels)')
    assert lines[1].strip() == '-> tuple[6]'
    assert [line.split(']')[0].strip() for line in lines[2:]] == \
        [f'[{i}' for i in range(6)]
    assert lines[2].endswith('(2, 432, 4, 2, 2) float32')
    assert lines[6].endswith('[0, 23] (int64, cpu)  <- labels')
    assert lines[7].endswith('[0, 2] (int64, cpu)  <- coarse labels')


def test_a_tuple_argument_is_named_on_the_call_line_and_expanded_below():
    feats = Backbone()(torch.zeros(2, 3), FINE, COARSE)
    recorder = recorded(lambda m: m.cls_head.loss(feats, []))
    text = format_call(recorder.of('cls_head', 'loss')[0], FINE, COARSE)
    assert text.splitlines()[0] == '  cls_head.loss(feats=tuple[6], data_samples=list[0]())'
    assert '[4] [0, 23] (int64, cpu)  <- labels' in text
    assert f'... {2} more' in text  # long dicts are bounded, with a count


def test_data_samples_show_as_they_were_passed_and_as_returned():
    from mmaction.structures import ActionDataSample

    samples = [ActionDataSample().set_gt_label(0), ActionDataSample().set_gt_label(23)]
    recorder = recorded(lambda m: m.cls_head.predict((torch.zeros(2, 4),), samples))
    call, returned = format_call(recorder.of('cls_head', 'predict')[0], FINE, COARSE).split('->')
    assert 'data_samples=2 x ActionDataSample(gt_label) gt_label: 0, 23' in call
    assert 'pred_score' not in call  # it only got one afterwards
    assert 'ActionDataSample(gt_label, pred_score) gt_label: 0, 23' in returned


def test_a_call_that_raised_shows_its_error():
    model = Model()
    recorder, _, error = record(model, lambda: model.backbone(torch.zeros(1), bad=1))
    text = format_call(recorder.of('backbone')[0], FINE, COARSE)
    assert error is not None and text.endswith(f'!! {error}')
    assert "unexpected keyword argument 'bad'" in text


@pytest.mark.slow  # a real pipe into head: the CLI and its model process, started for real
def test_trace_piped_into_head_ends_quietly():
    cli = shutil.which('epam-guard', path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip('the epam-guard command is not installed next to this Python')
    result = subprocess.run(
        ['bash', '-c', f'"{cli}" trace --batch-size 1 | head -3; exit "${{PIPESTATUS[0]}}"'],
        capture_output=True, text=True, timeout=300, env={**os.environ, 'COLUMNS': '80'})
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith('loss mode (train), N=1 V=1'), result.stdout
    assert 'Traceback' not in result.stderr and 'BrokenPipeError' not in result.stderr
    assert result.returncode == 0, result.stderr
