"""The launcher mode and the ``ddp`` check on GPUs (``pytest -m gpu`` on a training node).

NCCL (the config's backend), one GPU per rank, peak GPU memory per rank.
Skipped with a reason where CUDA is not visible (the repository's
``conftest.py``); the two-rank tests also need two GPUs.
"""
from __future__ import annotations

import re

import pytest
from test_launcher import finish, guard_args, torchrun

pytestmark = [pytest.mark.gpu, pytest.mark.ddp]


def gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def test_one_rank_per_gpu_trains_with_nccl_and_reports_peak_memory():
    count = min(gpus(), 2)
    if count < 1:
        pytest.skip('no CUDA device is visible')
    code, out = finish(torchrun(guard_args(), nproc=count))
    assert code == 0, out
    assert out.count('passed, 0 failed') == 1, out
    for rank in range(count):
        assert re.search(rf'rank {rank} .* cuda:{rank}  batch 2  steps .*peak GPU memory '
                         r'\d+ MiB', out), out


def test_the_ddp_check_uses_nccl_with_two_gpus(epam_context_factory):
    if gpus() < 2:
        pytest.skip('the ddp check trains on two GPUs with nccl; fewer than two are visible')
    from epam_guard.checks import ddp
    from epam_guard.report.result import Status
    from epam_guard.run.engine import run_check

    result = run_check(epam_context_factory(device='cuda', batch_size=2), 'ddp', ddp.check)
    assert result.status is Status.PASS, result.verdict
    assert result.details['backend'] == 'nccl'
