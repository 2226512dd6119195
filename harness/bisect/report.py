"""The report of ``epam-guard bisect``: as data (``--json``) and as lines of text.

For the first bad commit: its hash, subject and author date, each rule it
broke with the findings there, the verdict of the same check at the last good
commit (its parent), and the files it changed; then the skipped commits and why.
"""
from __future__ import annotations

from typing import Any

from .search import Outcome, Tested, git


def last_good(outcome: Outcome) -> Tested | None:
    """The verdict of the first bad commit's parent (tested, or ``--good`` itself)."""
    if outcome.first_bad is None:
        return None
    parents = git(outcome.plan.repo, 'rev-list', '--parents', '-n', '1',
                  outcome.first_bad.hash).split()[1:]
    for parent in parents:
        found = outcome.verdict_of(parent)
        if found is not None:
            return found
    return outcome.runs[0]


def _verdict_line(run: Tested | None, check: str) -> str:
    if run is None:
        return 'not tested'
    if check == 'build':
        return f'{(run.fatal or {}).get("message", "built")}'
    for result in run.results:
        if result['name'] == check:
            return f'{result["status"].upper()} {result["verdict"]}'
    return 'not run'


def report(outcome: Outcome) -> dict[str, Any]:
    """The outcome as data (what ``--json`` writes and the text is made from)."""
    skipped = [run for run in outcome.runs if run.status == 'skip']
    data: dict[str, Any] = {
        'repository': str(outcome.plan.repo), 'good': outcome.plan.good,
        'bad': outcome.plan.bad, 'commits': outcome.plan.commits,
        'config': outcome.plan.config, 'guard_runs': len(outcome.runs),
        'seconds': round(outcome.seconds, 2),
        'tested': [{'commit': run.commit.hash, 'subject': run.commit.subject,
                    'status': run.status, 'new': [list(p) for p in run.new],
                    'reason': run.reason, 'seconds': round(run.seconds, 2)}
                   for run in outcome.runs],
        'skipped': [{'commit': run.commit.hash, 'reason': run.reason} for run in skipped],
        'first_bad': None, 'candidates': outcome.candidates, 'message': outcome.message,
    }
    if outcome.first_bad is not None:
        bad = outcome.verdict_of(outcome.first_bad.hash) or outcome.runs[1]
        good = last_good(outcome)
        broken = []
        for check, section in bad.new:
            broken.append({
                'check': check, 'section': section,
                'findings': [f for r in bad.results if r['name'] == check
                             for f in r.get('findings', []) if f['section'] == section],
                'at_first_bad': _verdict_line(bad, check),
                'last_good': good.commit.hash if good else None,
                'at_last_good': _verdict_line(good, check)})
        data['first_bad'] = {'commit': outcome.first_bad.hash,
                             'subject': outcome.first_bad.subject,
                             'date': outcome.first_bad.date, 'broken': broken,
                             'files': outcome.files}
    return data


def format_report(data: dict[str, Any]) -> list[str]:
    """The report as lines of text."""
    lines: list[str] = []
    first = data['first_bad']
    if first is not None:
        lines.append(f'first bad commit {first["commit"][:10]} {first["subject"]!r} '
                     f'({first["date"]})')
        for broken in first['broken']:
            rule = broken['findings'][0]['rule'] if broken['findings'] else broken['section']
            lines.append(f'  broke [{rule}] in {broken["check"]}')
            for finding in broken['findings'][:3]:
                lines.append(f'    at {first["commit"][:10]}: {finding["message"]}')
            lines.append(f'    at {first["commit"][:10]}: {broken["at_first_bad"]}'
                         if not broken['findings'] else
                         f'    at {(broken["last_good"] or "")[:10]} (last good): '
                         f'{broken["at_last_good"]}')
        lines.append('  files changed: ' + (', '.join(first['files']) or 'none'))
    elif data['message']:
        lines.append(data['message'])
        lines += [f'  {commit[:10]}' for commit in data['candidates']]
    if data['skipped']:
        lines.append(f'skipped {len(data["skipped"])} commit(s) that could not be checked:')
        lines += [f'  {s["commit"][:10]} {s["reason"]}' for s in data['skipped']]
    lines.append(f'{data["guard_runs"]} guard runs over {data["commits"]} commits, '
                 f'{data["seconds"]:.1f}s')
    return lines
