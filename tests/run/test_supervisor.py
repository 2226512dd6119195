"""The supervisor ends every run in a report: hangs, crashes and exits of model code.

A stand-in worker (``supervisor_worker.py``) misbehaves on demand without
importing torch, so each case takes a fraction of a second.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from epam_guard.probe.frames import read_stack, where
from epam_guard.probe.processes import describe_exit
from epam_guard.run.supervisor import Interrupted, Supervisor, interruptible

HERE = str(Path(__file__).parent)
CHECKS = ['first', 'second', 'third']


def supervise(behaviour: dict[str, str], timeout: float = 30.0, **spec: object):
    events: list[dict] = []
    supervisor = Supervisor({'command': 'check', 'checks': CHECKS, 'behaviour': behaviour,
                             **spec}, timeout, events.append, [HERE], worker='supervisor_worker')
    with supervisor:
        outcome = supervisor.run()
    assert not supervisor.folder.exists()  # the run's temporary folder is gone
    return outcome, [e for e in events if e['event'] != 'tick']


def statuses(outcome) -> dict[str, str]:
    return {r['name']: r['status'] for r in outcome.results}


def test_a_clean_run_reports_every_check_once():
    outcome, events = supervise({})
    assert statuses(outcome) == dict.fromkeys(CHECKS, 'pass')
    assert outcome.restarts == 0
    assert events[-1] == {'event': 'done'}


def test_a_hung_check_is_stopped_with_its_stack_and_the_rest_run_in_a_new_child():
    start = time.monotonic()
    outcome, _ = supervise({'second': 'spin'}, timeout=1.0)
    assert time.monotonic() - start < 15
    assert statuses(outcome) == {'first': 'pass', 'second': 'error', 'third': 'pass'}
    hung = outcome.results[1]
    assert hung['verdict'].startswith('did not finish within 1 s and was stopped; it was in ')
    assert 'supervisor_worker.py' in hung['verdict'] and 'spin_in_model_code' in hung['verdict']
    assert outcome.restarts == 1


@pytest.mark.parametrize('what, said', [
    ('exit0', 'exited with status 0 before finishing (os._exit in model code?)'),
    ('segfault', 'was killed by SIGSEGV (segmentation fault)'),
])
def test_a_process_that_dies_is_reported_against_the_check_it_was_running(what, said):
    outcome, _ = supervise({'first': what})
    assert statuses(outcome) == {'first': 'error', 'second': 'pass', 'third': 'pass'}
    assert outcome.results[0]['verdict'].startswith(f'the model process {said}')
    if what == 'segfault':  # faulthandler's stack names the line
        assert 'supervisor_worker.py' in outcome.results[0]['verdict']


def test_grandchildren_in_sessions_of_their_own_are_stopped_too(tmp_path):
    pid_file = tmp_path / 'pid'
    outcome, _ = supervise({'first': 'sleeper'}, timeout=1.0, pid_file=str(pid_file))
    assert statuses(outcome)['first'] == 'error'
    assert not psutil.pid_exists(int(pid_file.read_text())) or \
        psutil.Process(int(pid_file.read_text())).status() == psutil.STATUS_ZOMBIE


def test_a_build_that_never_returns_is_stopped_at_the_timeout_and_is_a_failing_row():
    """``--timeout`` bounds the build too (not only the checks), and the report has a row for
    the step it was stuck in; it is not started again (it would hang again)."""
    start = time.monotonic()
    outcome, events = supervise({'build': 'spin'}, timeout=1.0)
    assert time.monotonic() - start < 15
    assert outcome.restarts == 0
    assert [(r['name'], r['status']) for r in outcome.results] == [('build', 'error')]
    assert outcome.results[0]['verdict'].startswith('hung (did not finish within 1 s and was '
                                                    'stopped; it was in ')
    assert 'spin_in_model_code' in outcome.results[0]['verdict']
    assert outcome.fatal['message'].endswith('while loading the config and building the model')
    assert [e['event'] for e in events][-2:] == ['result', 'fatal']


#: Seconds a test waits for the stand-in worker to reach a step: a net for one that never
#: does, not a measure of how fast it gets there.
REACH_WAIT = 120.0


def wait_until_written(path: Path) -> None:
    """Return once ``path`` has content (or after :data:`REACH_WAIT` seconds)."""
    deadline = time.monotonic() + REACH_WAIT
    while not (path.exists() and path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)


def signal_once_written(path: Path, signum: int) -> threading.Thread:
    """A thread that sends ``signum`` to this process once ``path`` has content."""
    def wait_and_signal() -> None:
        wait_until_written(path)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=wait_and_signal, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_run_and_leaves_no_process(tmp_path, signum):
    """The signal comes once the first check has started its grandchild (it wrote the pid),
    not after a fixed time, which a loaded machine could spend still starting the worker."""
    pid_file = tmp_path / 'pid'
    supervisor = Supervisor({'command': 'check', 'checks': CHECKS,
                             'behaviour': {'first': 'sleeper'}, 'pid_file': str(pid_file)},
                            60.0, None, [HERE], worker='supervisor_worker')
    signal_once_written(pid_file, signum)
    with pytest.raises(Interrupted) as raised, interruptible(), supervisor:
        supervisor.run()
    assert raised.value.exit_code == 128 + signum
    assert supervisor.outcome.running == 'first'
    assert not supervisor.folder.exists()
    grandchild = int(pid_file.read_text())
    assert not psutil.pid_exists(grandchild) or \
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
    assert not psutil.Process().children(recursive=True)


def test_an_interrupt_names_the_check_whose_start_was_still_unread(tmp_path):
    """The signal comes while the supervisor is still busy with an earlier event (its
    on_event holds ``ready`` until the first check has started its grandchild): the start of
    that check is sent but unread, and the run is still reported as interrupted in it."""
    pid_file = tmp_path / 'pid'

    def on_event(event: dict) -> None:
        if event['event'] == 'ready':
            wait_until_written(pid_file)
            raise Interrupted(signal.SIGINT)

    supervisor = Supervisor({'command': 'check', 'checks': CHECKS,
                             'behaviour': {'first': 'sleeper'}, 'pid_file': str(pid_file)},
                            60.0, on_event, [HERE], worker='supervisor_worker')
    with pytest.raises(Interrupted), supervisor:
        supervisor.run()
    assert supervisor.outcome.running == 'first'
    assert supervisor.outcome.results == []
    grandchild = int(pid_file.read_text())
    assert not psutil.pid_exists(grandchild) or \
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_exit_statuses_read_as_causes():
    assert describe_exit(-9) == 'was killed by SIGKILL (killed, e.g. out of memory)'
    assert describe_exit(3) == 'exited with status 3'


def test_stacks_are_read_innermost_first_and_user_code_comes_first(tmp_path):
    dump = tmp_path / 'stack.txt'
    dump.write_text('Current thread 0x00007f (most recent call first):\n'
                    '  File "/x/site-packages/torch/nn/modules/module.py", line 10 in _call_impl\n'
                    '  File "/home/me/fork/model.py", line 42 in forward\n')
    stack = read_stack(dump)
    assert stack[0] == '/x/site-packages/torch/nn/modules/module.py:10 in _call_impl'
    assert where(stack) == '/home/me/fork/model.py:42 in forward'


def test_a_process_whose_parent_ended_before_it_armed_its_lifeline_exits_at_once():
    """The parent-death signal cannot reach a process whose parent is already gone: the
    lifeline sees that it is not the child of the process that started it and ends it."""
    import subprocess
    import sys

    code = ('from epam_guard.probe.lifeline import die_with_parent\n'
            'die_with_parent(parent=1)\n'  # not this process's parent: it was orphaned
            'print("still running")')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=30)
    assert (done.returncode, done.stdout) == (1, '')
    assert done.stderr == 'epam-guard: the process that started this one has ended; stopping\n'
