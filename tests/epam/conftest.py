"""Shared fixtures for the tests of ``epam/``: the config's model, tiny batches, devices.

"Tiny" keeps the channel counts, the 3:1 pose:RGB frame ratio and the 4:1
RGB:heat-map spatial ratio of NTU-60 but shrinks time and space:
imgs (N, V, 3, 4, 64, 64) and heatmap_imgs (N, V, 17, 12, 16, 16), which give
x_rgb (N*V, 432, 4, 2, 2) and x_pose (N*V, 216, 12, 2, 2).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch

import epam  # noqa: F401  (registers the models)

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'epam_ntu60.py'
TINY_RGB = (3, 4, 64, 64)
TINY_POSE = (17, 12, 16, 16)


@pytest.fixture(scope='session', autouse=True)
def _mmaction_scope() -> None:
    """Nested builds (the data preprocessor) resolve names in MMAction2's scope."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')


@pytest.fixture(autouse=True)
def _one_thread_unless_slow(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, and on a shared CPU the
    OpenMP workers of concurrent processes spin against each other (measured:
    7 s with one thread vs 69 s with two for the recognizer tests under load).
    NTU-size (``slow``) tests keep the process setting; it is restored after each test.
    """
    if request.node.get_closest_marker('slow') is not None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope='session')
def model_cfg() -> dict:
    """The training config's ``model`` section, as a plain dict (never modified)."""
    from mmengine.config import Config
    return Config.fromfile(str(CONFIG)).model.to_dict()


@pytest.fixture
def build_model(model_cfg: dict) -> Callable[..., torch.nn.Module]:
    """Build the config's recognizer (weights initialised), optionally with head overrides."""
    from mmaction.registry import MODELS

    def build(device: str = 'cpu', **head_overrides: object) -> torch.nn.Module:
        cfg = copy.deepcopy(model_cfg)
        cfg['cls_head'].update(head_overrides)
        torch.manual_seed(0)
        model = MODELS.build(cfg)
        model.init_weights()
        return model.to(device)

    return build


def _make_inputs(batch: int = 2, views: int = 1, device: str = 'cpu',
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny preprocessed batch, as MultiModalDataPreprocessor hands it to the model."""
    generator = torch.Generator().manual_seed(seed)
    return {
        'imgs': torch.randn((batch, views) + TINY_RGB, generator=generator).to(device),
        'heatmap_imgs': torch.rand((batch, views) + TINY_POSE, generator=generator).to(device),
    }


@pytest.fixture
def make_inputs() -> Callable[..., dict[str, torch.Tensor]]:
    """``make_inputs(batch=2, views=1, device='cpu', seed=0)``: a tiny model input dict."""
    return _make_inputs


@pytest.fixture
def make_samples() -> Callable[[Sequence[int]], list]:
    """``make_samples(labels)``: ``ActionDataSample`` objects carrying ``gt_label``."""
    from mmaction.structures import ActionDataSample

    def make(labels: Sequence[int]) -> list:
        return [ActionDataSample().set_gt_label(int(label)) for label in labels]

    return make


@pytest.fixture(params=['cpu', pytest.param('cuda', marks=pytest.mark.gpu)])
def model_device(request: pytest.FixtureRequest) -> str:
    """Every device the model must run on; CUDA is skipped with a reason when absent."""
    if request.param == 'cuda' and not torch.cuda.is_available():
        pytest.skip('no CUDA device is visible')
    return request.param


def _state_snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer (non-persistent ones included)."""
    named = list(module.named_parameters()) + list(module.named_buffers())
    return {name: tensor.detach().clone() for name, tensor in named}


def _assert_same_state(before: dict[str, torch.Tensor], module: torch.nn.Module) -> None:
    """Every parameter and buffer equals its copy in ``before`` (names included)."""
    after = _state_snapshot(module)
    assert after.keys() == before.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert not changed, f'changed: {changed[:10]}'


@pytest.fixture
def state_snapshot() -> Callable[[torch.nn.Module], dict[str, torch.Tensor]]:
    """``state_snapshot(module)``: copies of all parameters and buffers."""
    return _state_snapshot


@pytest.fixture
def assert_same_state() -> Callable[[dict[str, torch.Tensor], torch.nn.Module], None]:
    """``assert_same_state(before, module)``: nothing changed since the snapshot."""
    return _assert_same_state
