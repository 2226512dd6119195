"""``epam_guard.bisect.search`` and ``bisect_step`` without a model: the verdict of one step,
the options passed on to each step, and the arguments refused before anything runs."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from epam_guard.bisect.cli import forwarded
from epam_guard.bisect.verdict import classify, failing_pairs
from epam_guard.cli import build_parser, main
from epam_guard.report.console import EXIT_UNUSABLE


def result(name: str, status: str, *sections: str) -> dict:
    return {'name': name, 'status': status, 'verdict': '',
            'findings': [{'rule': f'CONTRACT §{s}', 'section': s, 'message': 'm'}
                         for s in sections]}


def test_failing_pairs_name_the_check_and_each_rule_it_broke():
    report = {'results': [result('structure', 'fail', '3', '4', '3'), result('labels', 'pass'),
                          result('routing', 'error')],
              'fatal': None}
    assert failing_pairs(report) == {('structure', '3'), ('structure', '4'),
                                     ('routing', 'error')}


def test_a_rule_that_already_failed_at_good_does_not_make_a_commit_bad():
    report = {'results': [result('labels', 'fail', '5')]}
    assert classify(report, {('labels', '5')}, None)[0] == 'good'
    # The same check breaking another rule does.
    report = {'results': [result('labels', 'fail', '5', '4')]}
    assert classify(report, {('labels', '5')}, None)[:2] == ('bad', [('labels', '4')])


def test_only_the_failures_seen_at_bad_steer_the_search():
    report = {'results': [result('labels', 'fail', '5')]}
    assert classify(report, set(), {('structure', '3')})[0] == 'good'
    report = {'results': [result('structure', 'fail', '3')]}
    assert classify(report, set(), {('structure', '3')})[0] == 'bad'


def test_a_model_that_cannot_be_built_is_skipped_but_a_broken_rule_is_not():
    unbuildable = {'results': [], 'fatal': {'message': 'custom_imports failed: SyntaxError',
                                            'rule': None}}
    assert classify(unbuildable, set(), None)[::2] == ('skip', 'custom_imports failed: '
                                                               'SyntaxError')
    broken = {'results': [], 'fatal': {'message': 'x', 'rule': 'CONTRACT §1 inputs'}}
    assert classify(broken, set(), None)[:2] == ('bad', [('build', '1')])
    assert classify(None, set(), None)[0] == 'skip'
    assert classify({'results': [], 'interrupted': 'SIGINT'}, set(), None)[0] == 'stop'


def test_the_shared_options_given_are_passed_on_to_each_step():
    args = build_parser().parse_args([
        'bisect', '--good', 'v1', '--only', 'structure,routing', '--batch-size', '2',
        '--cfg-options', 'a=1', 'b=2', '--strict', '--import-path', '.'])
    assert forwarded(args) == ['--device', 'cpu', '--size', 'tiny', '--batch-size', '2',
                               '--cfg-options', 'a=1', 'b=2', '--seed', '0', '--tier', 'fast',
                               '--only', 'structure,routing', '--timeout', '300.0',
                               '--strict']


def _repo(path: Path) -> Path:
    path.mkdir()
    for args in (('init', '-q'), ('commit', '-q', '--allow-empty', '-m', 'one'),
                 ('commit', '-q', '--allow-empty', '-m', 'two')):
        subprocess.run(['git', '-c', 'user.name=a', '-c', 'user.email=a@b', *args], cwd=path,
                       check=True, capture_output=True)
    return path


@pytest.mark.parametrize('extra, message', [
    (['--good', 'HEAD~1', '--repo', '{tmp}'], 'is not inside a git repository'),
    (['--good', 'nope', '--repo', '{repo}'], '--good nope: no such revision'),
    (['--good', 'HEAD', '--repo', '{repo}'], 'are the same commit'),
    (['--good', 'HEAD', '--bad', 'HEAD~1', '--repo', '{repo}'], 'is not an ancestor of'),
])
def test_unusable_arguments_exit_2_with_one_line(tmp_path, capsys, extra, message):
    repo = _repo(tmp_path / 'repo')
    outside = tmp_path / 'outside'
    outside.mkdir()
    argv = [a.format(tmp=outside, repo=repo) for a in extra]
    assert main(['bisect', *argv]) == EXIT_UNUSABLE
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert subprocess.run(['git', 'worktree', 'list'], cwd=repo, capture_output=True,
                          text=True).stdout.count('\n') == 1


def test_skipped_commits_that_leave_several_candidates_are_listed_not_guessed(tmp_path):
    from types import SimpleNamespace

    from epam_guard.bisect.report import format_report, report
    from epam_guard.bisect.search import Outcome, Plan, _conclude

    first, second = 'a' * 40, 'b' * 40
    output = ("There are only 'skip'ped commits left to test.\n"
              f'The first bad commit could be any of:\n{first}\n{second}\n'
              'We cannot bisect more!\n')
    outcome = Outcome(Plan(tmp_path, 'g' * 40, 'h' * 40, 'c.py', ['.'], [], 5))
    _conclude(outcome, SimpleNamespace(repo=tmp_path, tree=tmp_path), output)
    assert outcome.first_bad is None and outcome.candidates == [first, second]
    data = report(outcome)
    assert data['first_bad'] is None and data['candidates'] == [first, second]
    text = '\n'.join(format_report(data))
    assert 'could be any of 2 commits' in text and first[:10] in text
