"""The CLI's own logic, without a model: rendering, exit statuses, reports, argument errors.

(Named apart from ``tests/harness/test_cli.py``, which drives the CLI on the real model.)
"""
from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from argparse import Namespace
from pathlib import Path

import pytest

from epam_guard.checks import CHECKS
from epam_guard.cli import _conclude, main
from epam_guard.report.console import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, Console
from epam_guard.run.supervisor import Interrupted, Outcome

#: Real runs recorded for the root-cause tests (``tests/report/test_rootcause.py``).
ROOT_CAUSE_RUNS = Path(__file__).parents[1] / 'report' / 'rootcause_runs.json'


def result(name: str, status: str = 'pass', verdict: str = 'ok', warnings=(), findings=()):
    return {'name': name, 'status': status, 'verdict': verdict, 'seconds': 0.5,
            'findings': list(findings), 'details': {}, 'warnings': list(warnings)}


def conclude(tmp_path, results, strict=False, names=None, **outcome):
    args = Namespace(strict=strict, json=tmp_path / 'r.json', junit=tmp_path / 'r.xml')
    out = io.StringIO()
    code = _conclude(args, Console(stream=out), Outcome(results=results, **outcome),
                     names or [r['name'] for r in results], 0.0)
    return code, out.getvalue(), json.loads((tmp_path / 'r.json').read_text())


def junit_cases(tmp_path) -> tuple[ET.Element, dict[str | None, ET.Element]]:
    root = ET.parse(tmp_path / 'r.xml').getroot()
    return root, {case.get('name'): case for case in root.iter('testcase')}


def reported(case: ET.Element, attribute: str | None = 'message') -> str:
    """The failure's or error's ``attribute`` (None: its text) of a JUnit test case."""
    element = next(e for e in (case.find('failure'), case.find('error')) if e is not None)
    return (element.get(attribute) if attribute else element.text) or ''


def test_an_interrupted_run_is_not_green_in_junit(tmp_path, capsys):
    names = ['structure', 'routing', 'labels', 'train_step']
    code, _, report = conclude(tmp_path, [result('structure')], names=names,
                               interrupted=Interrupted(signal.SIGINT), running='routing',
                               header={'config': 'c.py'})
    assert code == 130 and report['interrupted'] == 'SIGINT'
    root, cases = junit_cases(tmp_path)
    assert (root.get('tests'), root.get('failures'), root.get('errors')) == ('4', '0', '3')
    assert cases['structure'].find('error') is None
    assert reported(cases['routing']) == (
        'the run was interrupted (SIGINT) while this check was running')
    for name in ('labels', 'train_step'):
        assert reported(cases[name]) == (
            'not run: the run was interrupted (SIGINT) before this check started')
    assert 'interrupted during routing' in capsys.readouterr().err


def test_a_run_that_could_not_start_has_an_error_case_per_check(tmp_path):
    fatal = {'event': 'fatal', 'exit': 2, 'message': 'config c.py cannot be parsed'}
    conclude(tmp_path, [], names=['structure', 'routing'], fatal=fatal)
    root, cases = junit_cases(tmp_path)
    assert (root.get('tests'), root.get('errors')) == ('2', '2')
    assert 'config c.py cannot be parsed' in reported(cases['routing'])


def test_the_root_cause_goes_into_junit(tmp_path):
    runs = json.loads(ROOT_CAUSE_RUNS.read_text('utf-8'))
    results = [{**data, 'findings': [{'rule': f['section'], **f} for f in data['findings']]}
               for data in runs['inch_ref']['results']]
    _, text, report = conclude(tmp_path, results)
    headline = 'cls_head received x_rgb with 432 channels but model.cls_head.in_channels is'
    assert headline in text and headline in report['root_cause']['message']
    root, cases = junit_cases(tmp_path)
    prop = root.find("properties/property[@name='root_cause']")
    assert prop is not None and prop.get('value', '').startswith(f'ROOT CAUSE: {headline}')
    assert root.findtext('system-out', '').startswith(f'ROOT CAUSE: {headline}')
    for name in report['root_cause']['follows']:
        first = reported(cases[name], None).splitlines()[0]
        assert first.startswith(f'ROOT CAUSE: {headline}') and first.endswith('because of it)')


def test_warnings_pass_unless_strict(tmp_path):
    results = [result('runner', warnings=['torch.load refuses the checkpoint'])]
    code, text, report = conclude(tmp_path, results)
    assert code == EXIT_OK
    assert text.splitlines()[-1] == '1 passed, 0 failed; warnings in runner'
    assert report['results'][0]['warnings'] == ['torch.load refuses the checkpoint']
    code, text, _ = conclude(tmp_path, results, strict=True)
    assert code == EXIT_FAILED
    assert text.splitlines()[-1].endswith('(--strict: warnings fail)')


def test_the_json_report_says_what_ran_where(tmp_path):
    header = {'config': 'c.py', 'device': 'cpu', 'timings': {'imports': 1.0},
              'versions': {'torch': '2.x', 'mmengine': '0.10', 'mmaction': '1.2',
                           'mmcv': '2.1', 'epam-guard': '0.1.0'}}
    _, _, report = conclude(tmp_path, [result('structure')], header=header)
    assert report['device'] == 'cpu'
    assert set(report['versions']) >= {'torch', 'mmengine', 'mmaction', 'mmcv', 'epam-guard'}
    assert report['command'].split()[0]  # how this run was started, as typed
    assert report['exit_status'] == EXIT_OK
    assert set(report['timings']) >= {'imports', 'checks', 'total'}


def test_junit_stays_well_formed_whatever_a_model_prints(tmp_path):
    hostile = 'boom \x1b[31mred\x1b[0m \x00\x07 bell \ud800'
    results = [result('structure', 'fail', hostile,
                      findings=[{'rule': 'CONTRACT §3 backbone 6-tuple', 'message': hostile}]),
               result('runner', warnings=[hostile])]
    conclude(tmp_path, results)
    root = ET.parse(tmp_path / 'r.xml').getroot()
    failure = root.find('testcase/failure')
    assert failure is not None and '\x1b' not in failure.get('message', '')
    assert '\\x00' in failure.get('message', '')
    assert root.findtext("testcase[@name='runner']/system-out", '').startswith('warning: boom')


def test_a_fatal_error_still_writes_the_json(tmp_path, capsys):
    fatal = {'event': 'fatal', 'exit': 1, 'message': 'a hard-wired .cuda() at model.py:12'}
    code, _, report = conclude(tmp_path, [], fatal=fatal)
    assert code == 1
    assert report['fatal']['message'] == fatal['message']
    assert capsys.readouterr().err == f'epam-guard: error: {fatal["message"]}\n'


def test_long_verdicts_are_bounded_on_the_terminal(tmp_path):
    _, text, report = conclude(tmp_path, [result('summary', 'error', 'x' * 11_000)])
    assert max(len(line) for line in text.splitlines()) < 500
    assert len(report['results'][0]['verdict']) == 11_000


def test_a_closed_pipe_ends_printing_quietly():
    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError

        def fileno(self):
            raise OSError

    console = Console(stream=Closed())
    console.line('first')
    console.line('second')
    assert console.closed


def test_progress_shows_the_running_check_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        console = Console(stream=stream)
        console.progress('structure')
        console.result(result('structure'))
    assert '....  structure' in tty.getvalue()
    assert log.getvalue().startswith('  PASS  structure')


def test_list_shows_every_check_with_its_tier_and_rules(capsys):
    assert main(['check', '--list']) == EXIT_OK
    out = capsys.readouterr().out
    table, profiles = out.split('\n\n')
    lines = table.splitlines()
    assert [line.split()[0] for line in lines] == list(CHECKS)
    assert lines[0].split()[1] == 'fast' and lines[-1].split()[1] == 'launch'
    assert lines[0].split()[2:6] == ['§2,', '§3,', '§4', 'epam']  # structure: epam only
    assert profiles.splitlines()[0].startswith('contract mmaction2: §1, §2, §4, §5, §6, §7 (')
    assert profiles.splitlines()[1].startswith('contract epam: §1, §2, §3, §4, §5, §6, §7 (')


def test_version(capsys):
    assert main(['--version']) == EXIT_OK
    assert capsys.readouterr().out.startswith('epam-guard ')


@pytest.mark.parametrize('argv, said', [
    (['--seed', '-1'], 'argument --seed: must be in [0, 4294967295], but got -1'),
    (['--seed', str(2**32)], 'argument --seed: must be in [0, 4294967295]'),
    (['--timeout', '0'], 'argument --timeout: must be a finite number of seconds above 0'),
    (['--timeout', 'nan'], 'argument --timeout: must be a finite number of seconds above 0'),
    (['--timeout', 'inf'], 'argument --timeout: must be a finite number of seconds above 0'),
    (['--views', '0'], 'argument --views: must be at least 1, but got 0'),
    (['--batch-size', '-2'], 'argument --batch-size: must be at least 1, but got -2'),
    (['--cfg-options', 'a=[1,2'], "argument --cfg-options: 'a=[1,2': unbalanced []"),
    (['--cfg-options', 'a..b=1'], "argument --cfg-options: 'a..b' is not a dotted config key"),
    (['--json', '/no/such/folder/r.json'], 'argument --json: the folder of'),
    (['--import-path', '/no/such/folder'], 'argument --import-path: /no/such/folder is not'),
    (['--only', 'foo'], 'argument --only: unknown check(s) foo; choose from structure'),
    (['--tier', 'slow'], "argument --tier: invalid choice: 'slow'"),
])
def test_bad_arguments_are_one_line_and_exit_2_before_anything_heavy(argv, said):
    code = ('import sys\nfrom epam_guard.cli import main\ncode = main(sys.argv[1:])\n'
            'assert "torch" not in sys.modules and "mmaction" not in sys.modules\n'
            'sys.exit(code)')
    done = subprocess.run([sys.executable, '-c', code, 'check', *argv], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == EXIT_UNUSABLE, done.stderr
    assert done.stdout == ''
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and said in lines[0]


@pytest.mark.slow  # the CLI and its model process, started for real
def test_the_supervising_process_never_imports_the_model_stack(tmp_path):
    code = ('import sys\nfrom epam_guard.cli import main\ncode = main(sys.argv[1:])\n'
            'print("parent imported:", sorted(m for m in ("torch", "mmaction", "mmengine") '
            'if m in sys.modules))\nsys.exit(code)')
    done = subprocess.run([sys.executable, '-c', code, 'check', '--only', 'summary',
                           '--batch-size', '1'], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith('epam-guard check ') and 'checks=summary' in lines[0]
    assert lines[-1] == 'parent imported: []'


@pytest.mark.parametrize(('argv', 'shown'), [
    (['--only', 'ddp'], 'checks=ddp size='),
    (['--tier', 'fast', '--skip', 'summary'],
     'checks=structure,routing,labels,label_blind,train_step,eval_purity,pipe_shapes,'
     'first_pass size='),
    (['--tier', 'fast'], 'tier=fast size='),
    ([], 'tier=all size=')])
def test_the_header_prints_the_selection(monkeypatch, capsys, argv, shown):
    monkeypatch.setattr('epam_guard.cli._run', lambda spec, args, on_event: Outcome())
    main(['check', *argv])
    assert shown in capsys.readouterr().out.splitlines()[0]


ROOT_CAUSE_RUN = 'inch_ref'


def test_the_root_cause_sits_where_the_readme_shows_it(tmp_path):
    """README's example is the end of the report for a recorded run, line for line."""
    readme = (Path(__file__).resolve().parents[2] / 'README.md').read_text('utf-8')
    block = next(b for b in readme.split('```') if b.lstrip('\n').startswith('ROOT CAUSE:'))
    runs = json.loads(ROOT_CAUSE_RUNS.read_text('utf-8'))
    results = [{**data, 'findings': [{'rule': f['section'], **f} for f in data['findings']]}
               for data in runs[ROOT_CAUSE_RUN]['results']]
    _, text, _ = conclude(tmp_path, results)
    shown = block.strip('\n').splitlines()
    assert text.splitlines()[-len(shown):] == shown


def test_control_characters_from_the_model_are_shown_not_obeyed(tmp_path, capsys):
    hostile = 'boom \x1b[2J\x1b[31mred\x1b[0m \x07bell \x9b2J \rover'
    out = io.StringIO()
    console = Console(verbose=True, stream=out)
    console.result(result('structure', 'fail', hostile, warnings=[hostile],
                          findings=[{'rule': 'CONTRACT §3 backbone 6-tuple', 'message': 'a'},
                                    {'rule': 'CONTRACT §3 backbone 6-tuple',
                                     'message': hostile}]))
    conclude(tmp_path, [], fatal={'event': 'fatal', 'exit': 1, 'message': hostile})
    for text in (out.getvalue(), capsys.readouterr().err):
        assert not any(c in text for c in '\x1b\x07\x9b\r'), repr(text)
        assert 'boom red \\x07bell \\x9b2J' in text
