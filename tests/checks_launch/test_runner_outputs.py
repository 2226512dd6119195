"""Where the ``runner`` check lets a run write (``checks._outputs``), without a Runner.

Milliseconds each, except the last test: two processes watching one folder
at once, as two guard runs sharing a current directory and TMPDIR do.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from mmengine.config import Config

from epam_guard.checks import _outputs
from epam_guard.checks._outputs import named_folders, redirect_outputs, watched_writes


def user_config() -> Config:
    return Config(dict(
        work_dir='/experiments/epam', ann_file='/data/ntu60_2d.pkl',
        model=dict(type='Recognizer', init_cfg=dict(type='Pretrained', checkpoint='/w/x3d.pth')),
        train_dataloader=dict(dataset=dict(ann_file='/data/ntu60_2d.pkl')),
        visualizer=dict(type='ActionVisualizer', vis_backends=[
            dict(type='LocalVisBackend', save_dir='/experiments/vis',
                 scalar_save_file='scalars.json'),
            dict(type='WandbVisBackend', init_kwargs=dict(project='epam'))]),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', out_dir='/ckpt', save_best='auto',
                            backend_args=dict(backend='petrel')),
            logger=dict(type='LoggerHook', out_dir='s3://bucket/logs', out_suffix=('.log',))),
        custom_hooks=[dict(type='Dumper', result_file='/results/preds.json')],
        test_evaluator=[dict(type='DumpResults', out_file_path='../results/test.pkl')],
        load_from='/experiments/epam/epoch_30.pth', resume=True))


def test_every_output_location_points_into_the_folder(tmp_path):
    cfg = user_config()
    swapped = redirect_outputs(cfg, tmp_path)
    assert swapped['ignored'] == {'load_from': '/experiments/epam/epoch_30.pth', 'resume': True}
    assert (cfg.load_from, cfg.resume) == (None, False)
    assert swapped['replaced'] == ['WandbVisBackend']
    assert cfg.visualizer.vis_backends[1] == dict(type='LocalVisBackend')
    assert cfg.visualizer.vis_backends[0].save_dir == str(
        tmp_path / 'visualizer.vis_backends.0.save_dir')
    assert cfg.visualizer.vis_backends[0].scalar_save_file == 'scalars.json'  # a name, inside
    assert cfg.default_hooks.checkpoint.out_dir == str(
        tmp_path / 'default_hooks.checkpoint.out_dir')
    assert 'backend_args' not in cfg.default_hooks.checkpoint
    assert swapped['dropped'] == ['default_hooks.checkpoint.backend_args']
    assert cfg.default_hooks.logger.out_dir.startswith(str(tmp_path))
    assert cfg.custom_hooks[0].result_file == str(tmp_path / 'custom_hooks.0.result_file'
                                                  / 'preds.json')
    # DumpResults insists on a .pkl name: the name is kept, the folder is ours
    assert cfg.test_evaluator[0].out_file_path == str(
        tmp_path / 'test_evaluator.0.out_file_path' / 'test.pkl')
    # Inputs are the model's and the data's: untouched (the check swaps the data itself).
    assert cfg.model.init_cfg.checkpoint == '/w/x3d.pth'
    assert cfg.train_dataloader.dataset.ann_file == cfg.ann_file == '/data/ntu60_2d.pkl'
    assert cfg.work_dir == '/experiments/epam'  # set by the runner check itself
    assert set(swapped['redirected']) == {
        'visualizer.vis_backends.0.save_dir', 'default_hooks.checkpoint.out_dir',
        'default_hooks.logger.out_dir', 'custom_hooks.0.result_file',
        'test_evaluator.0.out_file_path'}


def test_folders_the_config_names_are_found(tmp_path):
    (tmp_path / 'experiment').mkdir()
    (tmp_path / 'data').mkdir()
    cfg = Config(dict(a=str(tmp_path / 'experiment'), b=dict(c=[str(tmp_path / 'data' / 'x.pkl')]),
                      d='relative/not/there', e='https://example.org/w.pth', f='/'))
    assert named_folders(cfg, tmp_path) == [tmp_path / 'experiment', tmp_path / 'data']


def test_the_watch_blames_what_this_process_changed_and_nothing_else(tmp_path):
    watched, own = tmp_path / 'cwd', tmp_path / 'epam-guard-runner-own'
    watched.mkdir()
    own.mkdir()
    (watched / 'kept.txt').write_text('user data')
    (watched / 'lost.txt').write_text('user data')
    (watched / 'appended.json').write_text('{}\n')
    with watched_writes([watched], own) as writes:
        (own / 'fine.txt').write_text('inside its own folder')
        (watched / 'stray.txt').write_text('outside')
        with open(watched / 'appended.json', 'a') as handle:
            handle.write('{}\n')
        (watched / 'lost.txt').unlink()
        (watched / 'transient.txt').write_text('made and removed')
        (watched / 'transient.txt').unlink()
        os.makedirs(watched, exist_ok=True)
        (watched / '__pycache__').mkdir()
        (watched / 'epam-guard-other-run').mkdir()
    assert writes.strays == [str(watched / 'stray.txt'), str(watched / 'appended.json'),
                             f'{watched / "lost.txt"} (removed)']
    assert writes.elsewhere == []


def test_changes_by_another_process_are_not_blamed(tmp_path):
    watched = tmp_path / 'cwd'
    watched.mkdir()
    with watched_writes([watched], tmp_path / 'own') as writes:
        subprocess.run([sys.executable, '-c', 'open("epoch_1.pth", "w").close()'],
                       cwd=watched, check=True)
    assert writes.strays == []
    assert writes.elsewhere == [str(watched / 'epoch_1.pth')]
    assert writes.elsewhere_like_outputs() == writes.elsewhere


RUN = textwrap.dedent('''
    import json, sys, tempfile
    from pathlib import Path
    from epam_guard.checks._outputs import watched_writes

    role, shared = sys.argv[1], Path(sys.argv[2])
    with watched_writes([shared], Path(tempfile.gettempdir()) / 'none') as writes:
        own = Path(tempfile.mkdtemp(prefix='epam-guard-runner-'))  # TMPDIR is the shared cwd
        (own / 'work_dir').mkdir()
        if role == 'writer':
            (shared / 'epoch_1.pth').write_bytes(b'a stray checkpoint')
        else:  # stay in the watch until the writer is done
            print('watching', flush=True)
            sys.stdin.readline()
    print(json.dumps({'strays': writes.strays, 'elsewhere': writes.elsewhere}))
''')


def test_two_runs_sharing_a_cwd_and_tmpdir_do_not_blame_each_other(tmp_path):
    shared = tmp_path / 'shared'
    shared.mkdir()
    options = dict(cwd=shared, env={**os.environ, 'TMPDIR': str(shared)}, text=True,
                   stdout=subprocess.PIPE)
    quiet = subprocess.Popen([sys.executable, '-c', RUN, 'quiet', str(shared)],
                             stdin=subprocess.PIPE, **options)
    try:
        assert quiet.stdout is not None and quiet.stdout.readline() == 'watching\n'
        writer = subprocess.run([sys.executable, '-c', RUN, 'writer', str(shared)], timeout=60,
                                check=True, **options)
        seen = {'writer': json.loads(writer.stdout),
                'quiet': json.loads(quiet.communicate('go\n', timeout=60)[0])}
    finally:
        quiet.kill()
        quiet.wait()
    stray = str(shared / 'epoch_1.pth')
    assert seen['writer'] == {'strays': [stray], 'elsewhere': []}
    # The quiet run saw the other's checkpoint and temporary folder appear: it blames neither.
    assert seen['quiet'] == {'strays': [], 'elsewhere': [stray]}
    assert len(list(shared.glob(f'{_outputs.GUARD_PREFIX}*'))) == 2
