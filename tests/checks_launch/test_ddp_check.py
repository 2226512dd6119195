"""Check ``ddp``: ranks started by torch's elastic agent train the config's Runner under DDP.

The fault tests plant a broken model (``rank_faults``) that the ranks import
through ``custom_imports``; each asserts the rank is named with how it ended,
and that no process of the run is left.
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import psutil
import pytest
from launch_variants import BATCH, HERE, START_WAIT, unused_head_overrides
from rank_faults import fault, overrides

from epam_guard.checks import ddp
from epam_guard.model.context import GuardSettings, build_context
from epam_guard.report.result import CheckResult, Status
from epam_guard.run.engine import run_check


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def run_variant(cfg_options: dict, timeout: float = 120.0) -> CheckResult:
    """The ddp check on the default config with ``cfg_options``; asserts nothing is left."""
    before = descendants()
    settings = GuardSettings(batch_size=BATCH, cfg_options=cfg_options,
                             import_paths=[str(HERE)], timeout=timeout)
    result = run_check(build_context(settings), 'ddp', ddp.check)
    assert descendants() - before == set(), 'a rank outlived the check'
    return result


@pytest.mark.ddp
@pytest.mark.slow  # two real rank processes under the elastic agent
def test_passes_on_the_default_config(launch_context, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the user's working directory: the ranks write nothing there
    before = descendants()
    result = run_check(launch_context, 'ddp', ddp.check)
    assert result.status is Status.PASS, f'{result.verdict}\n{result.details}'
    details = result.details
    assert (details['backend'], details['wrapper'], details['find_unused_parameters']) == (
        'gloo', 'MMDistributedDataParallel', False)
    # Positive evidence: both ranks logged both iterations, each of two samples.
    assert [[step['samples'] for step in steps] for steps in details['steps'].values()] == [
        [2, 2], [2, 2]]
    assert details['phases'] == {0: 'done', 1: 'done'}
    assert details['failures'] == {} and details['stopped'] == []
    assert 'model_wrapper_cfg.device_ids=None' in result.verdict  # the CPU override, stated
    assert descendants() - before == set()
    assert list(tmp_path.iterdir()) == []  # no .dist_test/ from MMEngine's result collection


@pytest.mark.ddp
@pytest.mark.slow
def test_ranks_do_not_inherit_the_module_lock_of_a_failed_build(launch_context):
    """A Runner build that failed inside MMEngine's ``get_instance`` leaves its module lock
    held; ranks forked afterwards must still build their own Runner."""
    from mmengine.utils import manager

    manager._lock.acquire()  # as the failed build left it: held by this (the main) thread
    try:
        result = run_check(launch_context, 'ddp', ddp.check)
    finally:
        manager._lock.release()
    assert result.status is Status.PASS, f'{result.verdict}\n{result.details}'


@pytest.mark.ddp
@pytest.mark.slow
def test_the_rank_that_raised_is_named_first_however_late_the_guard_looks(monkeypatch):
    """The guard looks only every 3 s: by then the raising rank has exited and the agent has
    stopped its peer, so both are seen gone at once. The order still comes from what each
    rank logged and how it ended."""
    monkeypatch.setattr(ddp, 'POLL', 3.0)
    result = run_variant(fault('raise'))
    messages = [finding.message for finding in result.findings]
    assert messages[0].startswith(
        'rank 1 failed in train iteration 1: RuntimeError: planted failure on this rank'), messages
    assert all('rank 1' not in m.split(' after ')[0] for m in messages[1:]), messages


@pytest.mark.ddp
@pytest.mark.slow  # two real rank processes under the elastic agent
def test_a_parameter_without_gradient_stops_ddp_and_is_named():
    result = run_variant(unused_head_overrides())
    assert result.status is Status.FAIL, result.verdict
    assert result.rules == ['6']
    message = result.findings[0].message
    # Whichever rank raises first, the agent stops the other: one rank or both are named.
    assert re.match(r'DistributedDataParallel \(find_unused_parameters=False\) stopped '
                    r'(both ranks|rank [01]) at train iteration 2 with "RuntimeError: Expected '
                    'to have finished reduction in the prior iteration', message), message
    named = re.search(r"2 parameters got no gradient, in 1 module\(s\): \{'cls_head.unused': "
                      r"\[('\w+'), ('\w+')\]\}", message)
    assert named and {named[1], named[2]} == {"'weight'", "'bias'"}, message
    assert 'find_unused_parameters=True) at a speed cost' in message


@pytest.mark.ddp
@pytest.mark.slow
def test_a_parameter_made_anew_in_forward_is_said_so():
    result = run_variant(overrides(**{'cls_head.type': 'RecreatedParameterHead'}))
    assert result.status is Status.FAIL, result.verdict
    message = result.findings[0].message
    assert "parameters made anew in forward, in {'cls_head': ['scale']}" in message
    assert 'create every parameter once, in __init__' in message
    assert 'at a speed cost' not in message  # no advice to hide it


@pytest.mark.ddp
@pytest.mark.slow
def test_a_rank_killed_by_sigkill_is_named_with_its_signal():
    result = run_variant(fault('kill'))
    assert result.status is Status.FAIL, result.verdict
    assert result.findings[0].message == (
        'rank 1 was killed by SIGKILL (killed, e.g. out of memory) in train iteration 1, '
        'without a Python exception')
    assert result.details['failures'][1]['signal'] == 'SIGKILL'


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize('kind, message', [
    ('raise', 'rank 1 failed in train iteration 1: RuntimeError: planted failure on this rank'),
    ('segfault', 'rank 1 was killed by SIGSEGV (segmentation fault) in train iteration 1, '
                 'without a Python exception'),
    ('os_exit', 'rank 1 exited with status 0 in train iteration 1 before finishing its 2 '
                'iterations (os._exit or sys.exit(0) in model code?)'),
])
def test_a_rank_that_dies_is_named(kind, message):
    result = run_variant(fault(kind))
    assert result.status is Status.FAIL, result.verdict
    assert result.findings[0].message.startswith(message), result.findings[0].message


@pytest.mark.ddp
@pytest.mark.slow
def test_a_hung_rank_is_stopped_within_the_budget():
    """The ranks are stopped once none has made progress for the budget (80% of --timeout),
    however slowly a loaded machine got them to the hang; the check's own record of the run
    shows the stop came within the budget and its allowance for stopping them. (A Runner's
    build logs no progress of its own; on two loaded cores it takes tens of seconds, so the
    budget here is one a real run could be given: 48 s.)"""
    result = run_variant(fault('sleep'), timeout=60.0)
    assert result.status is Status.FAIL
    assert result.rules == ['6']
    assert result.findings[0].message.startswith(
        'the 2 ranks made no progress for 48 s (rank 0: train iteration 1, rank 1: train '
        'iteration 1); they were stopped by the guard')
    assert sorted(result.details['stopped']) == [0, 1]
    assert result.details['timed_out'] is True
    details = result.details
    assert 48.0 <= details['ranks_s'] - details['progress_s'] < 48.0 + ddp.STOP_WAIT[False]


def waiting_on_the_agent(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked waiting on a lock of ``threading`` (an event, a join),
    called from the check's code other than ``Launch.start`` (which waits for the thread
    to begin)."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or frame.f_code.co_filename != threading.__file__ or \
            frame.f_code.co_name not in ('wait', '_wait_for_tstate_lock'):
        return False
    while frame is not None and frame.f_code.co_filename == threading.__file__:
        frame = frame.f_back
    return frame is not None and frame.f_code.co_name != 'start'


#: Seconds the stand-in agent waits for the check to wait on it: a net, never reached on a pass.
AGENT_WAIT = 20.0


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in this process, as at a terminal. A process started
    in the background by a shell without job control (``cmd &`` in a script, as a CI job
    may be) inherits SIGINT ignored, and Python then leaves it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize('moment', ['starting', 'waiting'])
def test_an_interrupted_check_returns_only_once_the_agent_has_ended(moment, tmp_path,
                                                                   monkeypatch,
                                                                   ctrl_c_raises):
    """Ctrl-C while torch's agent is at work: the check stops the ranks and waits for the
    agent to end before it gives the interrupt back, whatever the agent was doing.

    A stand-in agent (no processes) interrupts the check itself at a known moment: as the
    check starts it, or once the check is blocked waiting on it. It then ends only when it
    sees the check waiting on it again, after the check began stopping the ranks: a check
    that took the agent for ended (Python 3.11's ``Thread.join`` marks a running thread
    stopped when a KeyboardInterrupt cuts it short) or let the interrupt out before it
    stopped anything returns while the agent still runs."""
    main = threading.main_thread()
    stopping = threading.Event()
    ended: list[str] = []

    def stop(procs):
        stopping.set()
        return []

    def until(condition) -> bool:
        deadline = time.monotonic() + AGENT_WAIT
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def elastic_launch(config, entrypoint):
        def agent(spec):
            if moment == 'waiting':
                until(lambda: waiting_on_the_agent(main))
            signal.pthread_kill(main.ident, signal.SIGINT)  # type: ignore[arg-type]
            if until(lambda: stopping.is_set() and waiting_on_the_agent(main)):
                ended.append('before the check returned')
        return agent

    monkeypatch.setattr('torch.distributed.launcher.api.elastic_launch', elastic_launch)
    monkeypatch.setattr(ddp, 'stop', stop)
    monkeypatch.setattr(ddp, 'POLL', AGENT_WAIT)  # the check's own loop waits on the agent
    with pytest.raises(KeyboardInterrupt):
        ddp.run_ranks({}, tmp_path, budget=600.0)
    assert ended == ['before the check returned']


RUN_CHECK = '''
import signal, sys, time
from epam_guard.model.context import GuardSettings, build_context
from epam_guard.checks import ddp
from epam_guard.run.engine import run_check
sys.path.insert(0, {here!r})
import rank_faults
interrupted = []
def on_interrupt(signum, frame):  # Python's own handling of SIGINT, with the moment noted
    interrupted.append(time.monotonic())
    raise KeyboardInterrupt
signal.signal(signal.SIGINT, on_interrupt)
settings = GuardSettings(batch_size=2, import_paths=[{here!r}],
                         cfg_options=rank_faults.fault('sleep', mark={mark!r}))
try:
    print(run_check(build_context(settings), 'ddp', ddp.check).verdict, flush=True)
finally:
    if interrupted:
        print(f'returned {{time.monotonic() - interrupted[0]:.2f}} s after the interrupt',
              flush=True)
'''


#: Seconds past :data:`ddp.STOP_WAIT` an interrupted check may take to return: the last look
#: at the ranks and the reaping of what it stopped.
RETURN_MARGIN = 3.0
#: Seconds the process gets to end after the signal. After SIGINT that is the check's return
#: and then the interpreter's own exit, whose final garbage collection of torch's and
#: MMAction2's objects alone took 5-10 s with three other processes busy on this 2-core
#: machine; the check's part is bounded apart, by RETURN_MARGIN.
EXIT_WAIT = 90


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize('moment', ['forked', 'running'])
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_rank_outlives_the_process_running_the_check(sig, moment, tmp_path):
    """The check runs in a plain process (no supervisor); ranks die with it however it ends,
    and it ends within a bounded time whatever phase they are in: just forked (the first
    rank process appeared; the agent may still be starting the other), or running (rank 1
    marked that it began its first training step, where it hangs)."""
    mark = tmp_path / 'training-began'
    proc = subprocess.Popen([sys.executable, '-c', RUN_CHECK.format(here=str(HERE),
                                                                    mark=str(mark))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline and proc.poll() is None:
            if moment == 'forked':
                seen |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
            if seen or mark.exists():
                break
            time.sleep(0.02)
        seen |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert seen, 'the ranks never started'
        assert moment == 'forked' or mark.exists(), 'the ranks never began training'
        proc.send_signal(sig)
        proc.wait(timeout=EXIT_WAIT)
        output = proc.communicate()[0].decode(errors='replace')
        # Ended by the signal itself (an uncaught KeyboardInterrupt re-raises SIGINT), not by
        # an abort in the interpreter's exit (the agent's store freed too late).
        assert proc.returncode == -sig, output[-2000:]
        if sig == signal.SIGINT:  # the check's own bound, apart from the interpreter's exit
            returned = re.search(r'returned ([\d.]+) s after the interrupt', output)
            assert returned, output[-2000:]
            assert float(returned[1]) <= ddp.STOP_WAIT[True] + RETURN_MARGIN, output[-2000:]
        # A rank forked after the last look is in no list: it has the check's command line.
        seen |= {p.pid for p in psutil.process_iter(['cmdline'])
                 if p.info['cmdline'] == proc.args}
        gone, alive = psutil.wait_procs([psutil.Process(pid) for pid in seen
                                         if psutil.pid_exists(pid)], timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], \
            f'left running after {sig.name}: {alive}'
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in seen:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_failed_rank_is_named_and_the_waiting_one_reported_stopped():
    records = [{'rank': 0, 'phase': 'train iteration 1', 'error': None, 'steps': []},
               {'rank': 1, 'phase': 'build', 'error': 'ValueError: bad head\nmore lines',
                'error_line': 'ValueError: bad head (head.py:3)', 'steps': []}]
    outcome = {'timed_out': False, 'stopped': [0], 'early_exit': [],
               'failures': {1: {'exitcode': 1, 'signal': None, 'pid': 7}}}
    findings = ddp.diagnose(records, outcome, budget=240.0)
    assert [f.message for f in findings] == [
        'rank 1 failed in build: ValueError: bad head (head.py:3)',
        'rank 0 was still in train iteration 1 5 s after rank 1 failed; stopped by the guard']


def unfinished() -> list[dict | None]:
    """Both ranks' logs, last in their first iteration, without an error."""
    return [{'rank': r, 'pid': 10 + r, 'phase': 'train iteration 1', 'error': None,
             'steps': []} for r in range(2)]


def ended_ranks(ended_at: dict, exits: dict, **outcome: object) -> dict:
    """What ``run_ranks`` saw: when each rank was seen gone, its exit status; the agent's
    failure (it reports one) is the first of ``exits``."""
    rank, code = next(iter(exits.items()))
    return {'timed_out': False, 'stopped': [], 'early_exit': [], 'killed_by_guard': [],
            'ended_at': ended_at, 'exits': exits,
            'failures': {rank: {'exitcode': code, 'signal': None, 'pid': 10 + rank}},
            **outcome}


def test_the_rank_that_raised_is_the_cause_when_both_were_seen_gone_at_once():
    """The race of a late look: the peer, stopped by the agent's SIGTERM, is in the same look
    as the rank that raised (and, listed first, used to be reported first)."""
    records = unfinished()
    records[1].update(failed_at=100.0, error='RuntimeError: planted',  # type: ignore[union-attr]
                      error_line='RuntimeError: planted (x.py:1)')
    outcome = ended_ranks({0: 100.5, 1: 100.5}, {0: -signal.SIGTERM, 1: 1}, early_exit=[0, 1])
    assert [f.message for f in ddp.diagnose(records, outcome, budget=240.0)] == [
        'rank 1 failed in train iteration 1: RuntimeError: planted (x.py:1)',
        "rank 0 was stopped by torch's agent (SIGTERM) in train iteration 1 after rank 1 "
        'failed']


def test_every_rank_that_died_is_named_in_the_order_they_died():
    """The agent reports one failure; each rank's own exit status names the other too."""
    outcome = ended_ranks({0: 7.0, 1: 5.0}, {0: -signal.SIGSEGV, 1: -signal.SIGKILL},
                          early_exit=[1])
    assert [f.message for f in ddp.diagnose(unfinished(), outcome, budget=240.0)] == [
        'rank 1 was killed by SIGKILL (killed, e.g. out of memory) in train iteration 1, '
        'without a Python exception',
        'rank 0 was killed by SIGSEGV (segmentation fault) in train iteration 1, without a '
        'Python exception']


def test_ranks_the_guard_stopped_for_a_hang_are_not_called_killed():
    outcome = ended_ranks({}, {0: -signal.SIGKILL, 1: -signal.SIGKILL}, timed_out=True,
                          stopped=[0, 1], killed_by_guard=[0, 1])
    messages = [f.message for f in ddp.diagnose(unfinished(), outcome, budget=20.0)]
    assert messages == [
        'the 2 ranks made no progress for 20 s (rank 0: train iteration 1, rank 1: train '
        'iteration 1); they were stopped by the guard (a collective that never completes, or '
        'a hang in model code?)']


def test_no_pass_without_every_iteration_logged():
    """Both ranks ended cleanly as far as the agent knows, but one never logged its last step."""
    done = {'rank': 0, 'phase': 'done', 'error': None, 'finished': True, 'world_size': 2,
            'steps': [{}, {}], 'checksum': 1.0}
    short = dict(done, rank=1, steps=[{}], checksum=1.0)
    findings = ddp.diagnose([done, short], {'timed_out': False, 'stopped': [],
                                            'early_exit': [], 'failures': {}}, budget=240.0)
    assert [f.message for f in findings] == [
        'the ranks ended without logging every iteration they were to run: rank 0: 2/2 '
        'iterations, last in done, rank 1: 1/2 iterations, last in done']


def test_a_full_temporary_disk_is_the_guards_error_not_the_models(launch_context,
                                                                  monkeypatch):
    """Ranks that could not write their logs look as if they ended without a word: with the
    disk full, the check says so instead of blaming model code (os._exit?)."""
    records = unfinished()
    monkeypatch.setattr(ddp, 'run_ranks', lambda spec, root, budget, progress: ended_ranks(
        {0: 1.0, 1: 1.0}, {0: 0, 1: 0}, early_exit=[0, 1]))
    monkeypatch.setattr(ddp, 'read_logs', lambda root: records)
    monkeypatch.setattr('shutil.disk_usage', lambda path: SimpleNamespace(free=4096))
    result = run_check(launch_context, 'ddp', ddp.check)
    assert result.status is Status.ERROR
    assert 'has 4,096 bytes free: the ranks could not write their logs' in result.verdict
    assert 'os._exit' not in result.verdict


def test_budget_is_most_of_the_timeout(launch_context):
    quick = dataclasses.replace(launch_context, settings=dataclasses.replace(
        launch_context.settings, timeout=10.0))
    assert ddp.budget_of(quick) == 8.0


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_no_rank_outlives_an_interrupted_cli_run(sig):
    """``epam-guard check --only ddp`` stopped while its ranks train: everything goes."""
    command = [sys.executable, '-m', 'epam_guard.cli', 'check', '--only', 'ddp',
               '--import-path', str(HERE), '--cfg-options',
               'custom_imports.imports=[epam,rank_faults]',
               'model.backbone.type=RankFaultBackbone', 'model.backbone.fault=sleep']
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + START_WAIT
        # The supervised worker and its two ranks.
        while time.monotonic() < deadline and proc.poll() is None:
            seen |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
            if len(seen) >= 3:
                break
            time.sleep(0.2)
        assert len(seen) >= 3, 'the ranks never started'
        time.sleep(1.0)
        seen |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 128 + sig, out
        assert 'interrupted during ddp' in out
        alive = [pid for pid in seen if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f'left running after {sig.name}: {alive}'
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in seen:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.ddp
@pytest.mark.slow
def test_spawned_ranks_as_after_cuda_was_initialised(launch_context, monkeypatch):
    """Where this process has used CUDA the ranks are spawned, not forked: same verdict."""
    monkeypatch.setattr(ddp, 'start_method', lambda: 'spawn')
    result = run_check(launch_context, 'ddp', ddp.check)
    assert result.status is Status.PASS, f'{result.verdict}\n{result.details}'
    assert result.details['launcher'].endswith('127.0.0.1, spawn)')
