"""Hostile input: each case ends in a one-line diagnosis and the documented exit code.

Exit 2: the config, the arguments or the device are unusable (before any check).
Exit 1: a check failed, with the rule and the evidence. Never a bare traceback.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from guard_variants import overrides

from epam_guard.cli import main
from epam_guard.report.console import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE
from epam_guard.report.result import Status
from epam_guard.run.engine import run_checks

POSE_SAMPLER = 'train_dataloader.dataset.pipeline.0.clip_len.Pose'


def unusable(capsys, *argv: str, in_process: bool = False) -> str:
    """Run the CLI, expect exit 2 and exactly one line on stderr; return it.

    ``in_process``: the model side runs in this interpreter (``--in-process``), for configs
    that import nothing this process may not keep (a plugin of their own only from the
    ``own_imports`` folder, which is cleaned up), which spares a child process its start-up;
    the supervised path is tested by the others (a config the already-imported ``epam`` or
    ``mmaction`` would mask).
    """
    assert main(['check', *(['--in-process'] if in_process else []), *argv]) == EXIT_UNUSABLE
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert 'Traceback' not in captured.err + captured.out
    return lines[0]


def test_config_that_is_a_folder(capsys, tmp_path):
    assert 'is not a file' in unusable(capsys, str(tmp_path))


def test_config_with_a_syntax_error(capsys, tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('model = dict(type=\n')
    assert 'cannot be parsed: SyntaxError' in unusable(capsys, str(bad), in_process=True)


def test_config_without_a_model(capsys, tmp_path):
    empty = tmp_path / 'empty.py'
    empty.write_text('optim_wrapper = dict()\n')
    assert 'has no `model` dict to build' in unusable(capsys, str(empty), in_process=True)


def test_custom_import_that_fails(capsys, tmp_path):
    cfg = tmp_path / 'fork.py'
    cfg.write_text("custom_imports = dict(imports=['no_such_epam_fork'])\nmodel = dict()\n")
    line = unusable(capsys, str(cfg), in_process=True)
    assert 'custom_imports failed' in line and 'no_such_epam_fork' in line
    assert '--import-path' in line


def test_unregistered_type_names_the_fix(capsys):
    line = unusable(capsys, '--cfg-options', 'model.backbone.type=NoSuchBackbone',
                    in_process=True)
    assert "'NoSuchBackbone' is not registered" in line
    assert "custom_imports ['epam'] does not register it" in line
    assert "custom_imports = dict(imports=['epam', 'your_package'])" in line


def test_heatmap_channels_that_do_not_match_the_backbone(capsys):
    """Limbs only: the pipeline fixes the count (17 COCO limbs), and the backbone wants 19."""
    target = 'train_dataloader.dataset.pipeline.7'  # GeneratePoseTarget
    line = unusable(capsys, '--cfg-options', f'{target}.with_kp=False',
                    f'{target}.with_limb=True', 'model.backbone.pose_stream.in_channels=19',
                    in_process=True)
    assert 'the pipeline makes 17 heat-map channels' in line and 'in_channels is 19' in line


@pytest.mark.slow  # the model fails the size probe, which then tries the config's own
# clip lengths (seconds of CPU per pass)
def test_head_channels_that_do_not_match_the_backbone(capsys):
    code = main(['check', '--in-process', '--batch-size', '2', '--only', 'structure',
                 '--cfg-options', 'model.cls_head.in_channels=[2048,512]'])
    assert code == EXIT_FAILED
    printed = capsys.readouterr().out
    assert 'FAIL  structure' in printed and '2048' in printed


def test_pose_clip_length_the_model_cannot_take(capsys):
    line = unusable(capsys, '--cfg-options', f'{POSE_SAMPLER}=40', in_process=True)
    assert 'pose clip length 40 is not a multiple of the RGB clip length 16' in line


def test_heatmap_size_the_model_cannot_take(capsys):
    line = unusable(capsys, '--cfg-options',
                    'train_dataloader.dataset.pipeline.7.scaling=0.5', in_process=True)
    assert 'crop 224 and heat map 112 do not meet' in line


def test_hierarchy_that_disagrees_with_the_head(capsys):
    line = unusable(capsys, '--cfg-options', 'model.cls_head.num_classes=50',
                    in_process=True)
    assert 'config model.hierarchy: num_classes is 60 but the head has 50' in line


def test_batch_size_zero(capsys):
    assert '--batch-size: must be at least 1, but got 0' in unusable(capsys, '--batch-size', '0')


def test_batch_of_one_passes(capsys):
    assert main(['check', '--in-process', '--batch-size', '1',
                 '--only', 'structure,routing,train_step']) == EXIT_OK


def test_inf_in_the_inputs_is_traced_to_the_preprocessor(capsys):
    code = main(['check', '--in-process', '--batch-size', '2', '--only', 'train_step',
                 '--cfg-options', 'model.data_preprocessor.preprocessors.imgs.std=[0,0,0]'])
    assert code == EXIT_FAILED
    assert "inputs['imgs'] already holds Inf after the data preprocessor" in \
        capsys.readouterr().out


def test_nan_made_by_the_model_names_the_first_module(make_context):
    from epam_guard.checks import CHECKS
    from epam_guard.run.engine import run_check

    ctx = make_context(overrides(head='GuardTestNaNWeightsHead'))
    result = run_check(ctx, 'train_step', CHECKS['train_step'])
    assert result.status is Status.FAIL
    assert 'cls_head.fc_pose (Linear) is the first module to output NaN' in result.verdict


def test_a_check_that_raises_does_not_stop_the_others(make_context):
    # Hangs and crashes are the supervisor's (tests/hostile); in process, an exception
    # is that check's error and the next check still runs.
    from epam_guard.checks import CHECKS

    ctx = make_context()

    def raises(_ctx):
        raise RuntimeError('boom')

    results = run_checks(ctx, available={'raises': raises, 'eval_purity': CHECKS['eval_purity']})
    assert [r.status for r in results] == [Status.ERROR, Status.PASS]
    assert results[0].verdict.startswith('RuntimeError: boom (test_hostile.py:')


@pytest.mark.parametrize('argv', [['check', '--size', 'huge'], ['nonsense']])
def test_bad_arguments_exit_2(capsys, argv):
    assert main(argv) == EXIT_UNUSABLE
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ------------------------------------------------ importing and building a model
CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'epam_ntu60.py'


def test_config_without_its_custom_imports_names_the_missing_import(capsys, tmp_path):
    # The guard imports nothing of epam itself: what training rejects, it rejects.
    cfg = tmp_path / 'no_imports.py'
    cfg.write_text(''.join(line for line in CONFIG.read_text().splitlines(keepends=True)
                           if not line.startswith('custom_imports')))
    line = unusable(capsys, str(cfg), '--tier', 'fast')
    assert "model type 'EPAMRecognizer' is not registered" in line
    assert "add custom_imports = dict(imports=['epam'])" in line


def test_misspelled_type_is_matched_against_the_registry(capsys):
    line = unusable(capsys, '--cfg-options', 'model.cls_head.type=EPAMHierachicalHead',
                    in_process=True)
    assert "'EPAMHierachicalHead' is not registered" in line
    assert "did you mean 'EPAMHierarchicalHead'?" in line
    assert 'custom_imports' not in line


def test_custom_import_missing_from_the_import_path(capsys, own_imports):
    tmp_path = own_imports
    cfg = tmp_path / 'fork.py'
    cfg.write_text("custom_imports = dict(imports=['no_such_epam_fork'])\nmodel = dict()\n")
    line = unusable(capsys, str(cfg), '--import-path', str(tmp_path), in_process=True)
    assert f"'no_such_epam_fork': neither installed nor in --import-path {tmp_path}" in line


def test_cuda_hard_wired_at_build_is_a_finding_and_the_run_goes_on(capsys, own_imports):
    import torch

    tmp_path = own_imports
    if torch.cuda.is_available():
        pytest.skip('CUDA is visible here, so .cuda() at build time does not fail')
    (tmp_path / 'cuda_plugin.py').write_text(
        'import torch\n'
        'from epam.backbone import EPAMBackbone\n'
        'from mmaction.registry import MODELS\n'
        '\n'
        '@MODELS.register_module()\n'
        'class CudaAtBuildBackbone(EPAMBackbone):\n'
        '    def __init__(self, **kwargs):\n'
        '        super().__init__(**kwargs)\n'
        "        self.register_buffer('table', torch.zeros(3).cuda())\n")
    cfg = tmp_path / 'cuda.py'
    cfg.write_text(f"_base_ = [{str(CONFIG)!r}]\n"
                   "custom_imports = dict(imports=['epam', 'cuda_plugin'])\n"
                   "model = dict(backbone=dict(type='CudaAtBuildBackbone'))\n")
    report, junit = tmp_path / 'out.json', tmp_path / 'junit.xml'
    code = main(['check', '--in-process', str(cfg), '--import-path', str(tmp_path), '--only',
                 'structure,routing', '--batch-size', '2', '--json', str(report),
                 '--junit', str(junit)])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED, captured.err
    assert 'Traceback' not in captured.err + captured.out
    data = json.loads(report.read_text())
    assert data['fatal'] is None
    results = {r['name']: r for r in data['results']}
    # one finding for the one call site, in the first check; every check still ran
    sites = [f for r in results.values() for f in r['findings'] if 'hard-wired to CUDA' in
             f['message']]
    assert len(sites) == 1 and sites[0]['section'] == '6', sites
    assert re.search(r"cuda_plugin.py:9  self.register_buffer\('table', "
                     r'torch.zeros\(3\).cuda\(\)\) \(Tensor.cuda\(\), 1 call, first while '
                     r'building the model', sites[0]['message'])
    assert results['structure']['status'] == 'fail' and results['routing']['status'] == 'pass'
    assert 'cuda_plugin.py:9' in junit.read_text()


def _fork_with_mmaction(root: Path, init: str) -> Path:
    package = root / 'fork' / 'mmaction'
    package.mkdir(parents=True)
    (package / '__init__.py').write_text(init)
    return root / 'fork'


def test_fork_asserting_its_mmcv_version_says_which_mmcv_it_wants(capsys, tmp_path):
    fork = _fork_with_mmaction(tmp_path, (
        'import mmcv\n'
        'from mmengine.utils import digit_version\n'
        "mmcv_minimum_version = '1.3.0'\n"
        "mmcv_maximum_version = '2.0.0'\n"
        'mmcv_version = digit_version(mmcv.__version__)\n'
        'assert (digit_version(mmcv_minimum_version) <= mmcv_version\n'
        '        < digit_version(mmcv_maximum_version)), \\\n'
        "    f'MMCV=={mmcv.__version__} is used but incompatible. ' \\\n"
        "    f'Please install mmcv>={mmcv_minimum_version}, <{mmcv_maximum_version}.'\n"))
    cfg = tmp_path / 'fork_config.py'
    cfg.write_text("model = dict(type='EPAMRecognizer')\n")
    line = unusable(capsys, str(cfg), '--import-path', str(fork))
    assert f'mmaction cannot be imported (from {fork / "mmaction"})' in line
    assert 'wants mmcv >=1.3.0, <2.0.0' in line
    assert "pip install 'mmcv-lite>=1.3.0,<2.0.0'" in line
    assert re.search(r'mmaction/__init__.py:6\s+assert \(digit_version\(', line)


def test_numpy_1_idiom_on_numpy_2_says_the_code_wants_numpy_1(capsys, own_imports):
    import numpy

    tmp_path = own_imports
    if int(numpy.__version__.split('.')[0]) < 2:
        pytest.skip(f'NumPy {numpy.__version__} still has the NumPy 1 aliases')
    (tmp_path / 'np1_plugin.py').write_text('import numpy as np\n\nEPS = np.float(1e-6)\n')
    cfg = tmp_path / 'np1.py'
    cfg.write_text("custom_imports = dict(imports=['np1_plugin'])\nmodel = dict()\n")
    line = unusable(capsys, str(cfg), '--import-path', str(tmp_path), in_process=True)
    assert 'custom_imports failed' in line
    assert "this code wants numpy<2 (pip install 'numpy<2')" in line
    assert re.search(r'np1_plugin.py:3\s+EPS = np.float\(1e-6\)', line)


def test_fork_mmaction_after_another_mmaction_is_refused_plainly(tmp_path, monkeypatch):
    # In process (pytest, the plugin) the first mmaction imported stays: say so.
    import mmaction  # noqa: F401

    from epam_guard.contract.errors import ConfigError
    from epam_guard.model.context import load_config

    monkeypatch.setattr(sys, 'path', list(sys.path))
    fork = _fork_with_mmaction(tmp_path, '')
    with pytest.raises(ConfigError, match='mmaction was already imported from .* before '
                                          f'--import-path {fork} .* could take effect'):
        load_config(CONFIG, import_paths=[str(fork)])
    assert sys.path[0] == str(fork)
