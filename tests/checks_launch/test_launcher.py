"""``--launcher pytorch``: the guard as each rank of a torchrun job, on CPU/gloo.

Each test starts a real ``torchrun`` (``python -m torch.distributed.run``)
with two ranks, or two agents as two simulated nodes, on 127.0.0.1. Planted
faults come from ``rank_faults`` (imported by the ranks through
``custom_imports``). The contract checks are narrowed to ``structure`` and
batches to 2 samples, so a run takes tens of seconds on two cores: these
tests are ``slow``.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

import psutil
import pytest
from launch_variants import HERE, START_WAIT, unused_head_overrides
from rank_faults import fault

from epam_guard.run import launcher

pytestmark = [pytest.mark.ddp]
SMALL = ['train_dataloader.batch_size=2']


def options(overrides: dict) -> list[str]:
    """``--cfg-options`` arguments for a dict of overrides (lists of imports spelled out)."""
    args = []
    for key, value in overrides.items():
        if key == 'custom_imports':
            args.append(f'custom_imports.imports=[{",".join(value["imports"])}]')
        else:
            args.append(f'{key}={value}')
    return args


def guard_args(only: str = 'structure,ddp', cfg: Sequence[str] = (), timeout: float = 120,
               extra: Sequence[str] = ()) -> list[str]:
    return ['-m', 'epam_guard.cli', 'check', '--launcher', 'pytorch', '--only', only,
            '--timeout', str(timeout), '--import-path', str(HERE),
            '--cfg-options', *SMALL, *cfg, *extra]


def torchrun(args: list[str], *, nodes: str = '', nproc: int = 2) -> subprocess.Popen:
    command = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
               '--max-restarts=0', '--monitor-interval=0.2']
    command += nodes.split() if nodes else ['--rdzv-backend=c10d',
                                            '--rdzv-endpoint=127.0.0.1:0']
    return subprocess.Popen(command + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out


def report_of(out: str) -> list[str]:
    """The guard's report lines (torchrun's own messages and tracebacks left out)."""
    return [line for line in out.splitlines() if line.startswith('  ') and not
            line.strip().startswith(('File ', '^', 'return', 'raise'))
            or re.match(r'\d+ passed, \d+ failed', line)]


@pytest.mark.slow
def test_two_ranks_pass_with_one_report(tmp_path):
    code, out = finish(torchrun(guard_args(extra=['--json', str(tmp_path / 'r.json')])))
    assert code == 0, out
    assert out.count('2 passed, 0 failed') == 1, out  # rank 0 alone prints the report
    assert out.count('launcher=pytorch  world size 2  1 node(s)') == 1
    assert re.search(r'PASS  structure .* \(on each of 2 ranks\)', out)
    assert re.search(r'PASS  ddp .*MMDistributedDataParallel \(launcher=pytorch, 2 ranks, '
                     r'batch 2 per rank\) trained 2 iterations', out)
    assert re.search(r'rank 1 .* cpu  batch 2  steps \d+\.\d\ds, \d+\.\d\ds', out), out
    saved = json.loads((tmp_path / 'r.json').read_text())
    assert saved['world_size'] == 2 and [r['name'] for r in saved['results']] == [
        'structure', 'ddp']
    assert {'config', 'versions', 'timings', 'command', 'recipe'} <= set(saved)
    assert sorted(saved['results'][1]['details']['ranks']) == ['0', '1']


def free_port() -> int:
    """A port for the test's two agents to meet on (the test's own choice, retried on a race)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_on_one_machine():
    """Two torchrun agents (--nnodes=2, --node_rank 0 and 1), one rank each."""
    for _ in range(3):
        port = free_port()
        nodes = (f'--nnodes=2 --rdzv-backend=static --master-addr=127.0.0.1 '
                 f'--master-port={port}')
        agents = []
        for node in (0, 1):
            agents.append(torchrun(guard_args(), nodes=f'{nodes} --node-rank={node}', nproc=1))
        results = [finish(agent) for agent in agents]
        if not any('address already in use' in out.lower() for _, out in results):
            break
    (code0, out0), (code1, out1) = results
    assert (code0, code1) == (0, 0), out0 + out1
    assert out0.count('launcher=pytorch  world size 2  2 node(s)') == 1, out0
    assert out1.count('passed, 0 failed') == 0  # only global rank 0 prints


@pytest.mark.slow
def test_an_unused_parameter_is_named_by_module():
    code, out = finish(torchrun(guard_args(only='ddp', cfg=options(unused_head_overrides()))))
    assert code == 1, out
    assert re.search(r"FAIL  ddp .*DistributedDataParallel \(find_unused_parameters=False\) "
                     r"stopped rank [01] at train iteration 2", out), out
    assert "cls_head.unused" in out


@pytest.mark.slow
@pytest.mark.parametrize('kind, expected', [
    ('raise', r'FAIL  ddp .*rank 1 failed in train iteration 1: RuntimeError: planted failure '
              r'on this rank'),
    ('kill', r'FAIL  ranks .*not every rank reported: rank 1 \(last in train iteration 1\)'),
])
def test_a_rank_that_fails_is_named(kind, expected):
    code, out = finish(torchrun(guard_args(only='ddp', cfg=options(fault(kind)))))
    assert code == 1, out
    assert len(re.findall(r'0 passed, \d failed', out)) == 1, out  # one report, by rank 0
    assert re.search(expected, out), out


@pytest.mark.slow
def test_a_hung_rank_is_named_within_the_timeout(tmp_path):
    """Counted from the moment rank 1 hangs (it marks it), not from the job's start: how long
    a loaded machine takes to start the ranks is not the guard's to bound."""
    mark = tmp_path / 'hang-began'
    code, out = finish(torchrun(guard_args(only='ddp', cfg=options(fault(
        'sleep', mark=str(mark))), timeout=40)))
    ended = time.time()
    assert code == 1, out
    assert re.search(r'FAIL  ranks .*not every rank reported: rank 1 \(last in train '
                     r'iteration 1\)', out), out
    # The collectives give up at 75% of --timeout, rank 0 waits 20% more for the results;
    # then its report, and the launcher's own shutdown.
    assert ended - mark.stat().st_mtime < 40 + 30


@pytest.mark.slow
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_process_of_the_job_outlives_a_signal_to_torchrun(sig):
    proc = torchrun(guard_args(only='ddp', cfg=options(fault('sleep'))))
    seen: set[int] = {proc.pid}
    try:
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline and proc.poll() is None:
            with psutil.Process(proc.pid).oneshot():
                ranks = psutil.Process(proc.pid).children(recursive=True)
            seen |= {p.pid for p in ranks}
            if len(ranks) >= 2:
                break
            time.sleep(0.2)
        assert len(seen) >= 3, 'the ranks never started'
        time.sleep(3.0)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        alive = [pid for pid in seen if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        deadline = time.monotonic() + 10
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in alive if psutil.pid_exists(pid)
                     and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f'left running after {sig.name}: {alive}'
    finally:
        for pid in seen:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_job_told_to_stop_during_the_contract_checks_stops_and_says_so(tmp_path):
    """SIGTERM to torchrun while rank 0 is in its contract checks: the stop is no check's
    error (the rank used to report it as one and train on); rank 0 reports the run as
    interrupted, nothing trains, and no process of the job is left."""
    mark = tmp_path / 'fault-began'
    proc = torchrun(guard_args(only='structure,ddp', cfg=options(fault(
        'sleep', rank=0, when='check', mark=str(mark)))))
    try:
        deadline = time.monotonic() + 180
        while not mark.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert mark.exists(), 'rank 0 never reached its contract checks'
        job = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
        proc.send_signal(signal.SIGTERM)
        code, out = finish(proc, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code != 0, out
    assert 'interrupted: the launcher stopped rank 0 (SIGTERM)' in out, out
    assert 'PASS  ddp' not in out and 'trained 2 iterations' not in out, out
    alive = [pid for pid in job if psutil.pid_exists(pid)
             and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f'left running: {alive}'


def test_outside_a_job_the_launcher_mode_refuses_with_one_line(monkeypatch):
    from epam_guard.contract.errors import GuardError
    from epam_guard.model.context import GuardSettings

    for name in ('WORLD_SIZE', 'SLURM_NTASKS'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(GuardError, match='no WORLD_SIZE or SLURM_NTASKS is set'):
        launcher.run(GuardSettings(), ['structure'])


def test_a_check_passes_only_where_it_passed_on_every_rank():
    ok = {'name': 'routing', 'status': 'pass', 'verdict': 'labels reach', 'findings': [],
          'details': {}, 'seconds': 1.0, 'warnings': []}
    bad = dict(ok, status='fail', verdict='[CONTRACT §2] gt reached cls_head.loss')
    merged = launcher.merge([{'rank': 0, 'results': [ok]}, {'rank': 1, 'results': [bad]},
                             {'rank': 2, 'results': []}], ['routing'])
    assert [(r['status'], r['verdict']) for r in merged] == [
        ('fail', 'on rank(s) 1, 2: [CONTRACT §2] gt reached cls_head.loss')]


def test_a_rank_without_its_last_iteration_fails_the_training_row():
    record = {'finished': True, 'steps': [{'seconds': 0.5}], 'phase': 'done', 'checksum': 1.0}
    payloads = [{'rank': 0, 'training': dict(record, steps=[{'seconds': 0.5}] * 2)},
                {'rank': 1, 'training': record}]
    row = launcher.training_result(payloads, 'pytorch')
    assert row['status'] == 'fail'
    assert row['findings'][0]['message'] == 'rank 1 logged 1 of 2 iterations, last in done'


def test_lost_ranks_are_named_with_their_last_phase():
    row = launcher.lost_result([1], {0: 'done', 1: 'train iteration 1'},
                               'the launcher stopped rank 0 (SIGTERM)')
    assert row['status'] == 'fail'
    assert row['findings'][0]['message'] == (
        'not every rank reported: rank 1 (last in train iteration 1); the launcher stopped '
        'rank 0 (SIGTERM)')


@pytest.mark.slow
def test_slurm_semantics_with_two_tasks():
    """``--launcher slurm`` reads SLURM_PROCID/NTASKS/LOCALID (two tasks started by hand)."""
    for _ in range(3):
        port = free_port()
        tasks = []
        for task in (0, 1):
            env = {k: v for k, v in os.environ.items()
                   if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')}
            env.update(SLURM_PROCID=str(task), SLURM_NTASKS='2', SLURM_LOCALID=str(task),
                       SLURM_NODELIST='localhost', MASTER_ADDR='127.0.0.1',
                       MASTER_PORT=str(port), OMP_NUM_THREADS='1')
            args = guard_args()
            args[args.index('pytorch')] = 'slurm'
            tasks.append(subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, env=env))
        results = [finish(task) for task in tasks]
        if not any('address already in use' in out.lower() for _, out in results):
            break
    (code0, out0), (code1, out1) = results
    assert (code0, code1) == (0, 0), out0 + out1
    assert out0.count('launcher=slurm  world size 2') == 1, out0
    assert 'passed, 0 failed' not in out1


def test_the_report_counts_the_iterations_the_ranks_run():
    from epam_guard.checks import _rank as rank

    assert launcher.STEPS == rank.STEPS


@pytest.mark.parametrize('chosen, missing', [
    ('pytorch', 'RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are not set; start it '
                'with torchrun'),
    ('slurm', 'SLURM_PROCID, SLURM_NTASKS are not set; start it with srun'),
])
def test_an_explicit_launcher_outside_a_job_names_the_missing_variables(chosen, missing):
    """``--launcher pytorch|slurm`` by hand: one line, exit 2, no traceback."""
    env = {k: v for k, v in os.environ.items() if k not in (
        *launcher.JOB_VARIABLES['pytorch'], *launcher.JOB_VARIABLES['slurm'])}
    done = subprocess.run([sys.executable, '-m', 'epam_guard.cli', 'check', '--launcher', chosen],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f'epam-guard: error: --launcher {chosen} runs as one rank of a '
        f'{"torchrun" if chosen == "pytorch" else "Slurm"} job, but {missing}']


def test_the_launcher_report_has_the_keys_and_rows_of_a_supervised_one(launch_context,
                                                                        tmp_path, capsys):
    """One report shape: ``--launcher``'s JSON has every key a supervised run's has, and its
    terminal and JSON rows are the same checks in the same order (``runner`` included: the
    job's training run stands in for it)."""
    import argparse

    from epam_guard import cli
    from epam_guard.checks import CHECKS
    from epam_guard.run.supervisor import Outcome
    from epam_guard.run.worker import header

    names = list(CHECKS)
    made = header(launch_context, 0.0)

    def row(name: str) -> dict:
        return {'name': name, 'status': 'pass', 'verdict': 'ok', 'findings': [], 'details': {},
                'seconds': 0.1, 'warnings': []}

    supervised = argparse.Namespace(json=tmp_path / 'supervised.json', junit=None,
                                    strict=False)
    outcome, console = Outcome(header=made, results=[row(name) for name in names]), cli.Console()
    for result in outcome.results:  # as cmd_check prints each result event
        console.result(result)
    cli._conclude(supervised, console, outcome, names, 0.0)
    supervised_rows = [line.split()[1] for line in capsys.readouterr().out.splitlines()
                       if line.startswith('  PASS')]
    trained = {'finished': True, 'phase': 'done', 'steps': [{'seconds': 0.5}] * 2,
               'checksum': 1.0, 'reached': {'validation': 1.0}}
    payloads = {rank: {'rank': rank, 'host': 'node', 'node': '0', 'header': made,
                       'training': trained, 'results': [
                           row(name) for name in names if name not in launcher.REPLACED]}
                for rank in (0, 1)}
    code = launcher.report(0, 2, names, payloads, None, launcher.Board(0), 'pytorch', 1.0,
                           tmp_path / 'launched.json', None)
    launched_rows = [line.split()[1] for line in capsys.readouterr().out.splitlines()
                     if line.startswith('  PASS')]
    assert code == 0
    assert launched_rows == supervised_rows == names
    ours = json.loads((tmp_path / 'launched.json').read_text())
    theirs = json.loads((tmp_path / 'supervised.json').read_text())
    assert set(theirs) - set(ours) == set(), 'keys a supervised report has and --launcher lacks'
    assert [r['name'] for r in ours['results']] == [r['name'] for r in theirs['results']]
    assert set(ours['timings']) >= set(theirs['timings'])
