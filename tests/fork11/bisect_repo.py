"""A researcher's repository of the fork fixture, a dozen commits long, for ``epam-guard bisect``.

Commit 1 is the clean fork (``myfork/epam_fork`` and ``configs/fork_ntu60.py``);
the history then has documentation and config changes, one commit whose
model code cannot be imported (a typo in an import), the commit that fixes the
typo, and one commit that breaks the backbone's 6-tuple (it returns the two
streams only). :data:`HISTORY` is the history as data, so a test names the
commits it expects by subject.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKBONE = 'myfork/epam_fork/backbone.py'
RECOGNIZER = 'myfork/epam_fork/recognizer.py'
HEAD = 'myfork/epam_fork/head.py'
CONFIG = 'configs/fork_ntu60.py'

INITIAL = 'fork: EPAM recognizer, backbone and head on the MMAction2 1.1 API'
UNBUILDABLE = 'recognizer: import the coarse map from the hierarchy module'
TYPO_FIX = 'recognizer: fix the typo in the hierarchy import'
BREAKING = 'backbone: return the two streams only'

#: ``(subject, file, old text, new text)``; ``old`` None appends ``new`` to the file.
HISTORY: tuple[tuple[str, str, str | None, str], ...] = (
    ('docs: how to train the fork', 'README.md', None, '# EPAM fork\n\nTrain with '
                                                       'tools/dist_train.sh.\n'),
    ('config: train for 40 epochs', CONFIG, 'max_epochs=30', 'max_epochs=40'),
    ('head: say which loss weight is which', HEAD,
     'loss_weights: tuple[float, ...] = (1.0, 1.2, 0.5, 0.9),',
     'loss_weights: tuple[float, ...] = (1.0, 1.2, 0.5, 0.9),  # rgb, pose, coarse x2'),
    ('backbone: name the clip lengths it was written for', BACKBONE,
     '#: The clip lengths this fork was written for',
     '#: The clip lengths (RGB, pose) this fork was written for'),
    (UNBUILDABLE, RECOGNIZER, 'from .hierarchy import COARSE_OF_FINE',
     'from .hierachy import COARSE_OF_FINE'),
    (TYPO_FIX, RECOGNIZER, 'from .hierachy import COARSE_OF_FINE',
     'from .hierarchy import COARSE_OF_FINE'),
    (BREAKING, BACKBONE,
     'return (x_rgb, x_pose, self.rgb_renovate(x_rgb), self.pose_renovate(x_pose),\n'
     '                gt, gt_coarse)',
     'return x_rgb, x_pose'),
    ('config: warm up the learning rate', CONFIG, None,
     "param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, "
     'end=2)]\n'),
    ('head: comment the prediction field', HEAD,
     '#: Where predictions go:', '#: Where predictions are written:'),
    ('docs: changelog', 'CHANGELOG.md', None, '- backbone returns the streams\n'),
    ('config: batch size 16', CONFIG, 'batch_size=8', 'batch_size=16'),
)


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith('GIT_')}
    env.update(GIT_AUTHOR_NAME='A Researcher', GIT_AUTHOR_EMAIL='researcher@example.org',
               GIT_COMMITTER_NAME='A Researcher', GIT_COMMITTER_EMAIL='researcher@example.org')
    if date is not None:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(['git', '-c', 'init.defaultBranch=main', *args], cwd=repo,
                          check=True, capture_output=True, text=True, env=env).stdout.strip()


def build(repo: Path) -> list[str]:
    """Make the repository at ``repo``; returns the commit hashes, oldest first."""
    repo.mkdir(parents=True)
    shutil.copytree(HERE / 'myfork', repo / 'myfork',
                    ignore=shutil.ignore_patterns('__pycache__'))
    (repo / 'configs').mkdir()
    shutil.copy(HERE / 'configs' / 'fork_ntu60.py', repo / CONFIG)
    _git(repo, 'init', '-q')
    commits = [_commit(repo, INITIAL, 1)]
    for day, (subject, name, old, new) in enumerate(HISTORY, start=2):
        path = repo / name
        text = path.read_text() if path.exists() else ''
        if old is None:
            text += new
        else:
            assert text.count(old) == 1, (subject, old)
            text = text.replace(old, new)
        path.write_text(text)
        commits.append(_commit(repo, subject, day))
    return commits


def _commit(repo: Path, subject: str, day: int) -> str:
    _git(repo, 'add', '-A')
    date = f'2026-03-{day:02d}T10:00:00+00:00'
    # Fixed dates give fixed hashes: the same repository, so the same bisection, every time.
    _git(repo, 'commit', '-q', '-m', subject, date=date)
    return _git(repo, 'rev-parse', 'HEAD')
