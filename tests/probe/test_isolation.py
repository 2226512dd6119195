"""``epam_guard.probe.isolation``: every process-wide change is put back, also when the body
raises.

Fake state only (no Runner): each test changes what a run would change and
checks it is back afterwards.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.utils import ManagerMixin

from epam_guard.probe import isolation


class Boom(Exception):
    pass


def maybe_raising(raises: bool) -> Any:
    """Expect the body's ``Boom`` when ``raises``."""
    return pytest.raises(Boom) if raises else contextlib.nullcontext()


class FakeManager(ManagerMixin):
    """A ``ManagerMixin`` of the test's own, so MMEngine's real instances stay untouched."""

    def __init__(self, name: str = '', **kwargs) -> None:
        super().__init__(name)


def denormal_survives() -> bool:
    """Whether a denormal double stays non-zero (it does unless flush-to-zero is on)."""
    return bool(torch.tensor([1e-323], dtype=torch.float64)[0] != 0)


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two intra-op threads for the test (the fast tier runs with one, where a thread count
    that is not put back would go unseen), the process's own count again afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize('raises', [False, True])
def test_cpu_math_puts_threads_and_flush_denormal_back(raises, two_threads):
    threads = torch.get_num_threads()
    assert threads == 2
    if not torch.set_flush_denormal(False):
        pytest.skip('this CPU cannot flush denormals')
    with maybe_raising(raises), isolation.cpu_math(torch.device('cpu')):
        assert torch.get_num_threads() == 1
        assert not denormal_survives()
        if raises:
            raise Boom
    assert torch.get_num_threads() == threads
    assert denormal_survives()


def test_cpu_math_leaves_other_devices_alone(two_threads):
    threads = torch.get_num_threads()
    with isolation.cpu_math(torch.device('meta')):
        assert torch.get_num_threads() == threads


@pytest.mark.parametrize('raises', [False, True])
def test_quiet_console_and_quiet_mmengine_put_levels_back(raises):
    logger = MMLogger.get_instance(f'isolation-test-quiet-{raises}', logger_name='quiet')
    stream = next(h for h in logger.handlers if type(h) is logging.StreamHandler)
    stream_level, own_level = stream.level, logger.level
    quiet = (isolation.quiet_console(logging.ERROR), isolation.quiet_mmengine(logging.WARNING))
    with maybe_raising(raises), quiet[0], quiet[1]:
        assert stream.level == logging.ERROR
        assert logger.level == logging.WARNING
        if raises:
            raise Boom
    assert (stream.level, logger.level) == (stream_level, own_level)


@pytest.mark.parametrize('raises', [False, True])
def test_mmengine_instances_forgets_what_was_created_and_closes_its_logs(tmp_path, raises):
    FakeManager.get_instance('kept')
    current_hub = MessageHub.get_current_instance()
    before = isolation.manager_instances()
    with maybe_raising(raises), isolation.mmengine_instances():
        FakeManager.get_instance('made-inside')
        MessageHub.get_instance('isolation-test-hub')
        logger = MMLogger.get_instance('isolation-test-log', logger_name='isolation-test-log',
                                       log_file=str(tmp_path / 'run.log'))
        files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        assert files and FakeManager.get_current_instance().instance_name == 'made-inside'
        if raises:
            raise Boom
    assert isolation.manager_instances() == before
    assert FakeManager.get_current_instance().instance_name == 'kept'
    assert MessageHub.get_current_instance() is current_hub
    assert all(h.stream is None for h in files)  # the run's log file is closed
    assert not FakeManager.check_instance_created('made-inside')


@pytest.mark.parametrize('raises', [False, True])
def test_random_state_puts_every_generator_back(raises):
    def seed(value: int) -> None:
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)

    def draw() -> tuple:
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed(7)
    with maybe_raising(raises), isolation.random_state():
        seed(1)
        draw()
        if raises:
            raise Boom
    after = draw()
    seed(7)
    assert after == draw()


@pytest.mark.parametrize('raises', [False, True])
def test_backend_flags_are_put_back(raises):
    cudnn = torch.backends.cudnn
    flags = (cudnn.benchmark, cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
             torch.are_deterministic_algorithms_enabled())
    method = multiprocessing.get_start_method(allow_none=True)
    import cv2

    threads = cv2.getNumThreads()
    with maybe_raising(raises), isolation.backend_flags():
        cudnn.benchmark, cudnn.deterministic = not flags[0], not flags[1]
        torch.backends.cuda.matmul.allow_tf32 = not flags[2]
        torch.use_deterministic_algorithms(not flags[3])
        multiprocessing.set_start_method('spawn' if method != 'spawn' else 'fork', force=True)
        cv2.setNumThreads(threads + 3)
        if raises:
            raise Boom
    assert (cudnn.benchmark, cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
            torch.are_deterministic_algorithms_enabled()) == flags
    assert multiprocessing.get_start_method(allow_none=True) == method
    assert cv2.getNumThreads() == threads


@pytest.mark.parametrize('raises', [False, True])
def test_environment_variables_are_put_back(monkeypatch, raises):
    monkeypatch.setenv('ISOLATION_TEST_KEPT', 'a')
    monkeypatch.setenv('ISOLATION_TEST_GONE', 'b')
    monkeypatch.delenv('ISOLATION_TEST_NEW', raising=False)
    with maybe_raising(raises), isolation.environment_variables():
        os.environ['ISOLATION_TEST_KEPT'] = 'changed'
        del os.environ['ISOLATION_TEST_GONE']
        os.environ['ISOLATION_TEST_NEW'] = 'c'
        if raises:
            raise Boom
    assert os.environ['ISOLATION_TEST_KEPT'] == 'a'
    assert os.environ['ISOLATION_TEST_GONE'] == 'b'
    assert 'ISOLATION_TEST_NEW' not in os.environ


def test_preserved_state_captures_the_console_and_restores_the_rest():
    before = isolation.manager_instances()
    state = torch.random.get_rng_state()
    with pytest.raises(Boom), isolation.preserved_state() as console:
        print('to the buffer')
        FakeManager.get_instance('inside-preserved')
        torch.manual_seed(11)
        os.environ['ISOLATION_TEST_PRESERVED'] = '1'
        raise Boom
    assert console.getvalue() == 'to the buffer\n'
    assert isolation.manager_instances() == before
    assert torch.equal(torch.random.get_rng_state(), state)
    assert 'ISOLATION_TEST_PRESERVED' not in os.environ


def test_recorded_writes_sees_python_writes_not_reads(tmp_path):
    existing = tmp_path / 'existing.txt'
    existing.write_text('x')
    with isolation.recorded_writes() as outer:
        with isolation.recorded_writes() as inner:
            existing.read_text()
            (tmp_path / 'new.txt').write_text('y')
            fd = os.open(tmp_path / 'raw', os.O_WRONLY | os.O_CREAT)
            os.close(fd)
            os.makedirs(tmp_path, exist_ok=True)  # exists: no change
            os.rename(tmp_path / 'raw', tmp_path / 'moved')
            existing.unlink()
        (tmp_path / 'after-inner.txt').write_text('z')
    (tmp_path / 'after-both.txt').write_text('z')
    assert inner == [('write', str(tmp_path / 'new.txt')), ('write', str(tmp_path / 'raw')),
                     ('remove', str(tmp_path / 'raw')), ('write', str(tmp_path / 'moved')),
                     ('remove', str(existing))]
    assert outer == inner + [('write', str(tmp_path / 'after-inner.txt'))]


def test_written_paths_of_single_events():
    assert isolation.written_paths('open', ('/a/b', 'r', 0)) == []
    assert isolation.written_paths('open', ('/a/b', 'a', 0)) == [('write', '/a/b')]
    assert isolation.written_paths('open', (3, 'w', 0)) == []  # a descriptor: no name
    assert isolation.written_paths('shutil.copyfile', ('/a', '/b')) == [('write', '/b')]
    assert isolation.written_paths('os.rmdir', ('i', 3)) == []  # relative to a descriptor
    assert isolation.written_paths('import', ('os',)) == []
    assert isolation.written_paths('os.remove', (Path('/x/y'), -1)) == [('remove', '/x/y')]


# --- hard-wired CUDA, contained --------------------------------------------------------------
class HardWired(torch.nn.Module):
    """Every kind of CUDA placement the containment keeps on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer('table', torch.zeros(3).cuda())
        self.ones = torch.ones(2, device='cuda')
        self.linear = torch.nn.Linear(2, 2).cuda()
        self.moved = torch.zeros(1).to('cuda:0')
        self.made = torch.zeros(1).new_zeros(2, device=torch.device('cuda'))
        self.kept = torch.zeros(1).to(torch.float64)  # a dtype: no placement

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + torch.ones(2, device='cuda')


def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


def test_contained_cuda_keeps_every_placement_on_the_device_and_names_each_site(monkeypatch):
    _cpu_only(monkeypatch)
    placements = isolation.CudaPlacements(torch.device('cpu'))
    with isolation.contained_cuda(placements, 'building the model'):
        model = HardWired()
        model.to('cuda')
        with isolation.contained_cuda(placements, 'running a check'):  # nested: one install
            for _ in range(3):
                model(torch.zeros(1, 2))
    assert all(t.device.type == 'cpu' for t in [*model.buffers(), *model.parameters()])
    sites = placements.sites
    assert len(sites) == 7  # one per call site, the dtype-only .to() not among them
    calls = {seen['call'] for seen in sites.values()}
    assert calls == {'Tensor.cuda()', "torch.ones(device='cuda')", 'Module.cuda()',
                     "Tensor.to('cuda')", "Tensor.new_zeros(device='cuda')",
                     "Module.to('cuda')"}
    forward = next(site for site in sites if 'return self.linear(x)' in site)
    assert sites[forward] == {'call': "torch.ones(device='cuda')", 'count': 3,
                              'phase': 'running a check'}
    assert re.match(r'tests/probe/test_isolation\.py:\d+  self\.register_buffer',
                    next(iter(sites)))
    assert len(placements.unreported()) == 7 and placements.unreported() == []


def test_contained_cuda_is_undone_after_the_run_also_when_it_raises(monkeypatch):
    _cpu_only(monkeypatch)
    originals = (torch.Tensor.__dict__.get('to'), torch.nn.Module.to, torch.zeros)
    with pytest.raises(Boom), isolation.contained_cuda(isolation.CudaPlacements('cpu')):
        raise Boom
    assert (torch.Tensor.__dict__.get('to'), torch.nn.Module.to, torch.zeros) == originals
    assert 'cuda' not in torch.Tensor.__dict__


@pytest.mark.parametrize('device, visible', [('cuda', True), ('cpu', True), (None, False)])
def test_contained_cuda_is_never_active_with_cuda_or_without_placements(monkeypatch, device,
                                                                       visible):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: visible)
    placements = isolation.CudaPlacements(torch.device(device)) if device else None
    with isolation.contained_cuda(placements):
        assert torch.zeros is torch.__dict__['zeros'] and 'to' not in torch.Tensor.__dict__
        assert not isolation.contains_cuda(torch.device(device or 'cpu')) or not visible


# --- library caches and config folders -------------------------------------------------------
def test_library_homes_point_missing_folders_into_a_temporary_one(tmp_path, monkeypatch):
    home = tmp_path / 'home'
    home.mkdir()
    (home / '.cache').mkdir()  # exists: used as it is, never hidden
    monkeypatch.setenv('HOME', str(home))
    for name, _, _ in isolation.LIBRARY_HOMES:
        monkeypatch.delenv(name, raising=False)
    with isolation.library_homes() as homes:
        config = Path(os.environ['XDG_CONFIG_HOME'])
        assert 'XDG_CACHE_HOME' not in os.environ
        assert not config.is_relative_to(home)
        with isolation.library_homes() as inner:  # a check inside the run: counts its own
            (config / 'matplotlib').mkdir(parents=True)  # what matplotlib does on first import
            assert os.environ['XDG_CONFIG_HOME'] == str(config)
            assert inner.created() == {'XDG_CONFIG_HOME': {'instead_of': str(home / '.config'),
                                                           'created': ['matplotlib']}}
        assert os.environ['XDG_CONFIG_HOME'] == str(config)
        assert homes.created() == inner.created()
        # matplotlib's own folder stands for the user's, not for our redirected XDG one
        assert homes.folders['MPLCONFIGDIR'][1] == str(home / '.config' / 'matplotlib')
    assert not config.exists()  # the temporary folder went with the run
    assert 'XDG_CONFIG_HOME' not in os.environ
    assert sorted(os.listdir(home)) == ['.cache']


def test_library_homes_leave_variables_the_user_set(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('MPLCONFIGDIR', str(tmp_path / 'mine'))
    with isolation.library_homes(tmp_path / 'run') as homes:
        assert os.environ['MPLCONFIGDIR'] == str(tmp_path / 'mine')
        assert 'MPLCONFIGDIR' not in homes.folders
    assert os.environ['MPLCONFIGDIR'] == str(tmp_path / 'mine')
