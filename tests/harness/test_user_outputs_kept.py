"""Nothing the config names as an output is written by a guard run (issue: ``structure``
overwrote ``DumpResults.out_file_path``).

A config names a planted user file or folder behind every output key the
redirection knows (``checks._outputs``), on real MMEngine parts (``DumpResults``,
visualizer and backend, checkpoint and logger hooks) and on a metric and a hook
that write to whatever they are given; after a run every planted byte is as it
was and nothing was added next to them.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from output_writers import WRITTEN, target

from epam_guard.checks._outputs import OUTPUT_DIRS, OUTPUT_FILES
from epam_guard.cli import main
from epam_guard.model.context import default_config_path
from epam_guard.report.console import EXIT_OK

HERE = Path(__file__).resolve().parent
#: Keys of no fixed name that the redirection takes by their ending when they point outside.
BY_ENDING = ('scores_file', 'cache_dir', 'report_path', 'dump_prefix')
USER_BYTES = b'the user\'s own results\n'


def plant(path: Path, folder: bool) -> None:
    if folder:
        path.mkdir(parents=True)
        (path / 'user.txt').write_bytes(USER_BYTES)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(USER_BYTES)


def places(root: Path, who: str) -> dict[str, str]:
    """One place per output key under ``root/who``, each planted with the user's bytes."""
    chosen = {}
    for key in sorted(OUTPUT_DIRS | OUTPUT_FILES) + list(BY_ENDING):
        value = root / who / key
        chosen[key] = str(value)
        written = target(key, str(value))
        plant(written.parent if written.name == WRITTEN else written, written.name == WRITTEN)
    return chosen


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob('*'))}


def planted_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config over the default one whose every output location is a planted user path."""
    user = tmp_path / 'user'
    dump, vis, backend = user / 'dump' / 'results.pkl', user / 'vis', user / 'backend'
    checkpoints, logs = user / 'checkpoints', user / 'logs'
    plant(dump, folder=False)
    for folder in (vis, backend, checkpoints, logs):
        plant(folder, folder=True)
    metric, hook = places(user, 'metric'), places(user, 'hook')
    config = tmp_path / 'planted.py'
    config.write_text(f'''
_base_ = [{str(default_config_path())!r}]
custom_imports = dict(imports=['epam', 'output_writers'], allow_failed_imports=False)
val_evaluator = [dict(type='AccMetric'),
                 dict(type='DumpResults', out_file_path={str(dump)!r}),
                 dict(type='GuardTestWritingMetric', **{metric!r})]
test_evaluator = val_evaluator
visualizer = dict(type='ActionVisualizer', save_dir={str(vis)!r},
                  vis_backends=[dict(type='LocalVisBackend', save_dir={str(backend)!r})])
default_hooks = dict(checkpoint=dict(out_dir={str(checkpoints)!r}),
                     logger=dict(out_dir={str(logs)!r}))
custom_hooks = [dict(type='GuardTestWritingHook', **{hook!r})]
''')
    return config, user


def assert_outputs_kept(tmp_path: Path, *selection: str) -> None:
    """One CLI run of ``selection`` on the planted config leaves every user byte as it was.

    ``--in-process`` among ``selection`` runs the model side here (its plugin,
    ``output_writers``, is already imported by this module).
    """
    config, user = planted_config(tmp_path)
    before = snapshot(user)
    assert len(before) > 3 * len(OUTPUT_DIRS | OUTPUT_FILES)
    code = main(['check', str(config), '--import-path', str(HERE), '--batch-size', '2',
                 *selection])
    assert code == EXIT_OK
    assert snapshot(user) == before


def test_structure_keeps_what_the_evaluator_names(tmp_path):
    assert_outputs_kept(tmp_path, '--in-process', '--only', 'structure')


@pytest.mark.slow
def test_a_full_run_keeps_every_output_the_config_names(tmp_path):
    assert_outputs_kept(tmp_path)
