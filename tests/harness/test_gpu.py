"""The GPU tier (``pytest -m gpu`` on a training node); skipped with a reason elsewhere.

The same checks at NTU size on CUDA, a mixed-precision training step, and
CPU/GPU parity of eval-mode outputs. Parity tolerance: 1e-3 absolute and
relative on the head's scores with TF32 disabled (float32 convolutions on
CPU and GPU differ in summation order, not in precision).
"""
from __future__ import annotations

import pytest

from epam_guard.checks import CHECKS
from epam_guard.model.batch import make_batch, preprocess
from epam_guard.report.result import Status
from epam_guard.run.engine import run_check

CONTRACT_CHECKS = ('structure', 'routing', 'labels', 'label_blind', 'train_step', 'eval_purity',
                   'first_pass', 'summary')
PARITY_ATOL = PARITY_RTOL = 1e-3

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize('name', CONTRACT_CHECKS)
def test_contract_checks_pass_on_cuda_at_ntu_size(epam_context_factory, name):
    ctx = epam_context_factory(device='cuda', size='ntu', batch_size=2)
    result = run_check(ctx, name, CHECKS[name])
    assert result.status is Status.PASS, result.verdict


def test_autocast_training_step_has_finite_losses(epam_context_factory):
    import torch

    ctx = epam_context_factory(device='cuda', size='ntu', batch_size=2)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    model = ctx.model.train()
    data = preprocess(model, make_batch(ctx.recipe), True)
    with torch.autocast('cuda', dtype=dtype):
        losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    total.backward()
    bad = [k for k, v in losses.items() if 'loss' in k and not torch.isfinite(v).all()]
    assert not bad, f'non-finite losses under {dtype}: {bad}'
    model.zero_grad(set_to_none=True)


def test_eval_outputs_match_between_cpu_and_cuda(epam_context_factory):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    scores = {}
    for device in ('cpu', 'cuda'):
        ctx = epam_context_factory(device=device, size='tiny', batch_size=2)
        model = ctx.model.eval()
        data = preprocess(model, make_batch(ctx.recipe, views=1), False)
        with torch.no_grad():
            feats, _ = model.extract_feat(data['inputs'], stage='head', test_mode=True)
        scores[device] = {k: v.float().cpu() for k, v in feats.items()}
    for key, expected in scores['cpu'].items():
        torch.testing.assert_close(scores['cuda'][key], expected, atol=PARITY_ATOL,
                                   rtol=PARITY_RTOL, msg=f'score {key!r} differs')
