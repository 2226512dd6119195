"""Seconds of the launch tier per shipped MMAction2 config (``scripts/launch_tier_times.py``).

Runs ``epam-guard check CONFIG --tier launch`` (weights off, as
``tests/mmaction/mmaction_configs.py`` derives) ``--repeat`` times per config
in this process and prints, per config, each check's status and the median of
its seconds, and the median total. ``--only tsn tsm`` narrows the set.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests' / 'mmaction'))

from mmaction_configs import IDS, mmaction_config  # noqa: E402

from epam_guard.cli import main as guard  # noqa: E402


def run_once(config_id: str) -> tuple[dict[str, tuple[str, float]], float]:
    """One launch-tier run: check -> (status, seconds), and the wall-clock seconds."""
    config = mmaction_config(config_id)
    with tempfile.TemporaryDirectory(prefix='launch-times-') as folder:
        report = Path(folder) / 'report.json'
        start = time.perf_counter()
        guard(['check', str(config.path), '--tier', 'launch', '--json', str(report),
               *config.cli_args])
        total = time.perf_counter() - start
        results = json.loads(report.read_text())['results']
    return {r['name']: (r['status'], float(r['seconds'])) for r in results}, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=3, help='runs per config (default: 3)')
    parser.add_argument('--only', nargs='*', choices=IDS, default=list(IDS))
    args = parser.parse_args()
    rows = []
    for config_id in args.only:
        runs = [run_once(config_id) for _ in range(args.repeat)]
        checks = {name: (runs[-1][0][name][0],
                         statistics.median(run[0][name][1] for run in runs))
                  for name in runs[-1][0]}
        total = statistics.median(run[1] for run in runs)
        rows.append(f'{config_id:9s} ' + '  '.join(
            f'{name} {status} {seconds:.1f}s' for name, (status, seconds) in checks.items())
            + f'  total {total:.1f}s (median of {args.repeat})')
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
