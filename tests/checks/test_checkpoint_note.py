"""The ``runner`` check's note on a checkpoint ``torch.load``'s defaults refuse: which load
fails, where, and what a training run would see (``checks.runner.default_load_note``)."""
from __future__ import annotations

import pytest
import torch
from mmengine.logging import HistoryBuffer

from epam_guard.checks.runner import default_load_note


def test_a_refused_checkpoint_says_which_load_fails_where_and_what_training_sees(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {}, 'message_hub': {'loss': HistoryBuffer()}}, path)
    try:
        torch.load(path)
    except Exception:  # this torch's defaults refuse MMEngine's message hub
        note = default_load_note(path)
    else:
        pytest.skip(f'torch {torch.__version__} reads MMEngine checkpoints by default')
        return
    assert note.startswith('checkpoint epoch_1.pth loads only with weights_only=False')
    assert 'it holds mmengine.logging.history_buffer.HistoryBuffer' in note  # what is refused
    assert 'mmengine.runner.load_checkpoint' in note  # where
    assert 'load_from=..., resume=True, tools/test.py' in note  # what the training run sees
    assert 'Training and saving work' in note
    assert len(note) <= 400  # shown whole on the terminal


def test_a_plain_checkpoint_loads_by_default(tmp_path):
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}}, path)
    assert default_load_note(path) == 'torch.load with its defaults reads it'
