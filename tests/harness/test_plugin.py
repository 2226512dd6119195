"""The pytest plugin, driven through ``pytester``: options, fixtures, snapshots, gpu skips,
and an unrelated project that must not notice the plugin is installed."""
from __future__ import annotations

import json
import os

import pytest


@pytest.fixture(autouse=True)
def own_session(monkeypatch):
    """The sessions pytester starts are their own, not workers of this run's pytest-xdist:
    syrupy reads ``PYTEST_XDIST_WORKER`` and, in a worker, never deletes a snapshot."""
    for name in [name for name in os.environ if name.startswith('PYTEST_XDIST_')]:
        monkeypatch.delenv(name)


@pytest.fixture
def heavy_imported():
    """Import the heavy stack in this process first: pytester's in-process runs drop
    modules first imported inside them, and torch cannot be imported twice (nor can
    MMAction2 register its models twice). Request it before ``pytester``, which
    drops at teardown what was imported after it was set up."""
    import syrupy.extensions.json  # noqa: F401

    import epam_guard.report.snapshot  # noqa: F401
    import epam_guard.run.engine  # noqa: F401
    from epam_guard.model.context import make_mmaction_importable

    make_mmaction_importable()


@pytest.fixture
def built(heavy_imported, default_context):
    """As ``heavy_imported``, with the default context built once in this process."""
    return default_context


def outcome(result) -> str:
    """The summary line (syrupy's report follows it, so parseoutcomes() cannot be used)."""
    return next(line for line in reversed(result.outlines)
                if ' in ' in line and ('passed' in line or 'failed' in line or 'skipped' in line))


FAST = ('--epam-batch-size', '2', '--epam-only', 'structure,routing', '-p', 'no:cacheprovider')

USER_TESTS = '''
def test_contract(epam_results):
    assert set(epam_results) == {'structure', 'routing'}
    failed = {name: r.verdict for name, r in epam_results.items() if not r.ok}
    assert not failed

def test_structure(epam_results, epam_snapshot):
    assert epam_results['structure'].details['structure']['backbone'] == epam_snapshot
'''


class Prebuilt:
    """A plugin for pytester's in-process sessions: a context this process built and one
    cache of its check results, as fixtures (the inner sessions' conftest hands them to the
    guard's plugin)."""

    def __init__(self, context: object) -> None:
        self.context = context
        self.results: dict = {}

    @pytest.fixture(scope='session')
    def epam_prebuilt(self) -> object:
        return self.context

    @pytest.fixture(scope='session')
    def epam_prebuilt_results(self) -> dict:
        return self.results


#: An inner session's conftest: the plugin's context is the outer one, and its results
#: (run by the plugin's ``epam_results`` in the first session) are kept across sessions.
SHARED_CONTEXT = '''
import pytest


@pytest.fixture(scope='session')
def epam_context_factory(epam_prebuilt):
    return lambda **overrides: epam_prebuilt


@pytest.fixture(scope='session')
def _epam_results_cache(epam_prebuilt_results):
    return epam_prebuilt_results
'''


def test_snapshot_lifecycle_create_pass_change_fail_update(built, pytester):
    """Six sessions over one built model and one run of its checks: what is tested is the
    snapshots' life cycle (the plugin's own build and check run are tested below)."""
    from dataclasses import replace

    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeconftest(SHARED_CONTEXT)
    stored = pytester.path / 'snapshots' / 'test_user' / 'test_structure.json'
    prebuilt = Prebuilt(replace(built, settings=replace(built.settings,
                                                        only=['structure', 'routing'])))

    def run(*args: str):
        return pytester.runpytest_inprocess(*FAST, *args, plugins=[prebuilt])

    missing = run()
    assert '1 failed, 1 passed' in outcome(missing)
    assert not stored.exists()  # never written without the flag

    assert '2 passed' in outcome(run('--snapshot-update'))
    assert json.loads(stored.read_text())['loss'][0]['shape'][1] == 432
    assert '2 passed' in outcome(run())

    for broken in (stored.read_text().replace('432', '2048', 1), '{"loss": [tru'):
        stored.write_text(broken)  # stale, then corrupted
        changed = run()
        assert '1 failed, 1 passed' in outcome(changed)
        changed.stdout.fnmatch_lines(['*run `pytest --snapshot-update` and review*'])
        assert stored.read_text() == broken  # a failing comparison leaves the file alone

    assert '2 passed' in outcome(run('--snapshot-update'))
    assert '2048' not in stored.read_text()


def test_snapshots_of_test_files_with_the_same_name_do_not_collide(pytester):
    for folder, value in (('a', 1), ('b', 2)):
        (pytester.path / 'tests' / folder).mkdir(parents=True)
        (pytester.path / 'tests' / folder / 'test_x.py').write_text(
            f'def test_it(epam_snapshot):\n    assert {{"value": {value}}} == epam_snapshot\n')
    args = ('--import-mode=importlib', '-p', 'no:cacheprovider')

    assert '2 passed' in outcome(pytester.runpytest_inprocess(*args, '--snapshot-update'))
    stored = {folder: pytester.path / 'snapshots' / 'tests' / folder / 'test_x' / 'test_it.json'
              for folder in 'ab'}
    assert json.loads(stored['a'].read_text()) == {'value': 1}
    assert json.loads(stored['b'].read_text()) == {'value': 2}
    assert '2 passed' in outcome(pytester.runpytest_inprocess(*args))

    stored['b'].write_text(json.dumps({'value': 3}))
    changed = pytester.runpytest_inprocess(*args)
    assert '1 failed, 1 passed' in outcome(changed)
    changed.stdout.fnmatch_lines(['FAILED tests/b/test_x.py::test_it*'])


def test_epam_device_skips_with_a_reason_when_the_test_asks_for_cuda(heavy_imported, pytester):
    import torch

    if torch.cuda.is_available():
        pytest.skip('a CUDA device is visible here')
    pytester.makeini('[pytest]\nmarkers =\n    gpu: needs CUDA\n')
    pytester.makepyfile(test_user_gpu='''
import pytest

@pytest.mark.gpu
def test_marked(epam_context):
    assert epam_context.device.type == 'cuda'

def test_by_option(epam_device):
    assert epam_device == 'cuda'
''')
    marked = pytester.runpytest_inprocess('-m', 'gpu', '-rs', '-p', 'no:cacheprovider')
    marked.assert_outcomes(skipped=1, deselected=1)
    marked.stdout.fnmatch_lines(['*no CUDA device is visible*the test is marked gpu*'])
    by_option = pytester.runpytest_inprocess('--epam-device', 'cuda', '-k', 'by_option', '-rs',
                                             '-p', 'no:cacheprovider')
    by_option.assert_outcomes(skipped=1, deselected=1)
    by_option.stdout.fnmatch_lines(['*no CUDA device is visible*--epam-device cuda*'])


UNRELATED = '''
import json
import os

import pytest


def test_the_plugin_is_loaded(pytestconfig):
    names = [getattr(p, '__name__', '') for p in pytestconfig.pluginmanager.get_plugins()]
    assert 'epam_guard.plugin' in names


def ours(environ):
    """Without what pytest and pytester themselves set for a run."""
    return {k: v for k, v in environ.items()
            if not k.startswith('PYTEST_') and k != 'PYTHONPATH'}


def test_no_environment_variable_changed():
    expected = json.loads(open(os.environ['EXPECTED_ENV']).read())
    assert ours(os.environ) == ours(expected)


@pytest.mark.gpu
def test_their_own_gpu_test_runs():
    pass
'''


def test_an_unrelated_project_is_left_alone(pytester, monkeypatch):
    """Their ``gpu`` marker means what they say it means; nothing of ours is set or declared."""
    pytester.makeini('[pytest]\naddopts = --strict-markers\nmarkers =\n    gpu: their own\n')
    pytester.makepyfile(test_theirs=UNRELATED)
    expected = pytester.path / 'env.json'
    monkeypatch.setenv('EXPECTED_ENV', str(expected))
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')  # whatever the machine, no CUDA is visible
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    expected.write_text(json.dumps(dict(os.environ)))

    result = pytester.runpytest_subprocess('-p', 'no:cacheprovider', '-rs')
    result.assert_outcomes(passed=3)

    markers = pytester.runpytest_subprocess('--markers', '-p', 'no:cacheprovider')
    text = markers.stdout.str()
    assert '@pytest.mark.gpu: their own' in text
    assert '@pytest.mark.slow' not in text and '@pytest.mark.ddp' not in text


SETTINGS_TEST = '''
from pathlib import Path

def test_config(epam_settings):
    assert epam_settings.config == Path({expected!r})
'''


def test_config_from_the_ini_file_and_the_option_overrides_it(heavy_imported, pytester):
    pytester.mkdir('configs')
    for name in ('from_ini.py', 'from_option.py'):
        (pytester.path / 'configs' / name).write_text('model = dict(type="X")\n')
    pytester.makeini('[pytest]\nepam_config = configs/from_ini.py\n')
    ini = pytester.path / 'configs' / 'from_ini.py'
    option = pytester.path / 'configs' / 'from_option.py'

    pytester.makepyfile(test_settings=SETTINGS_TEST.format(expected=str(ini.resolve())))
    pytester.runpytest_inprocess('-p', 'no:cacheprovider').assert_outcomes(passed=1)

    pytester.makepyfile(test_settings=SETTINGS_TEST.format(expected=str(option.resolve())))
    pytester.runpytest_inprocess('--epam-config', 'configs/from_option.py',
                                 '-p', 'no:cacheprovider').assert_outcomes(passed=1)


THREE_TESTS = '''
def test_one(epam_context):
    pass

def test_two(epam_results):
    pass

def test_three(epam_batch):
    pass
'''


@pytest.mark.parametrize('where', ['option', 'ini', 'syntax'])
def test_a_bad_config_is_one_usage_error(pytester, where):
    pytester.makepyfile(test_user=THREE_TESTS)
    args: tuple[str, ...] = ('-p', 'no:cacheprovider')
    if where == 'option':
        args += ('--epam-config', 'missing.py')
        expected = '*--epam-config: the config *missing.py does not exist*'
    elif where == 'ini':
        pytester.makeini('[pytest]\nepam_config = nowhere/missing.py\n')
        expected = '*epam_config (*): the config *nowhere/missing.py does not exist*'
    else:
        pytester.path.joinpath('broken.py').write_text('model = dict(\n')
        args += ('--epam-config', 'broken.py')
        expected = '*the config *broken.py is not valid Python (line 1:*'
    result = pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f'ERROR: {expected}'])
    text = result.stdout.str() + result.stderr.str()
    assert text.count('ERROR:') == 1 and 'Traceback' not in text
    assert pytester.runpytest_inprocess(*args, '--help').ret == pytest.ExitCode.OK


def test_a_config_that_cannot_be_built_ends_the_session_once(heavy_imported, pytester):
    pytester.path.joinpath('no_model.py').write_text('model = 3\n')
    pytester.makepyfile(test_user=THREE_TESTS)
    result = pytester.runpytest_inprocess('--epam-config', 'no_model.py', '-p', 'no:cacheprovider')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert text.count('has no `model` dict') == 1, text
    assert 'Traceback' not in text and 'passed' not in text


CFG_TEST = '''
def test_one(epam_settings):
    assert epam_settings.cfg_options == {expected!r}
'''


def test_cfg_options_take_one_pair_each_and_leave_the_test_paths_alone(heavy_imported, pytester):
    pytester.makepyfile(test_one=CFG_TEST.format(expected={'model.a': 1}),
                        test_two='def test_two():\n    raise AssertionError("collected")\n')
    result = pytester.runpytest_inprocess('--epam-cfg-options', 'model.a=1', 'test_one.py',
                                          '-p', 'no:cacheprovider')
    result.assert_outcomes(passed=1)

    pytester.makepyfile(test_one=CFG_TEST.format(expected={'model.a': 1, 'b': [1, 2]}))
    repeated = pytester.runpytest_inprocess('--epam-cfg-options', 'model.a=1',
                                            '--epam-cfg-options', 'b=[1,2]', 'test_one.py',
                                            '-p', 'no:cacheprovider')
    repeated.assert_outcomes(passed=1)


def test_options_are_declared_with_one_prefix(pytester):
    result = pytester.runpytest_inprocess('--help')
    text = result.stdout.str()
    assert 'EPAM recognizer contract checks' in text  # the plugin's option group
    for flag in ('--epam-config', '--epam-device', '--epam-size', '--epam-batch-size',
                 '--epam-only', '--epam-cfg-options', 'epam_config'):
        assert flag in text



WHERE_TEST = '''
def test_where(pytestconfig):
    assert str(pytestconfig.rootpath) == {root!r}
    assert pytestconfig.inipath is not None and str(pytestconfig.inipath.parent) == {root!r}
'''


def test_a_config_elsewhere_never_moves_the_rootdir_or_the_ini_file(pytester, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp('elsewhere') / 'cfg.py'
    elsewhere.write_text('model = dict(type="X")\n')
    pytester.makeini('[pytest]\nmarkers =\n    project_marker: declared by the project\n')
    pytester.makepyfile(test_where=WHERE_TEST.format(root=str(pytester.path)))
    args = ('-p', 'no:cacheprovider', '--strict-markers')

    # One word: pytest never takes the value for a test path.
    pytester.runpytest_inprocess(f'--epam-config={elsewhere}', *args).assert_outcomes(passed=1)
    # Two words, a value under the project: the rootdir and ini file stay what they were.
    local = pytester.path / 'configs' / 'cfg.py'
    local.parent.mkdir()
    local.write_text('model = dict(type="X")\n')
    pytester.runpytest_inprocess('--epam-config', str(local), *args).assert_outcomes(passed=1)
    # Two words, a value elsewhere: pytest would root the session there; refused, in one line.
    moved = pytester.runpytest_inprocess('--epam-config', str(elsewhere), *args)
    assert moved.ret == pytest.ExitCode.USAGE_ERROR
    moved.stderr.fnmatch_lines([f'ERROR: --epam-config {elsewhere}: pytest took the value for a '
                                f'test path, *; write --epam-config={elsewhere} (one word)'])
    assert 'Traceback' not in moved.stderr.str() and 'passed' not in moved.stdout.str()


SIBLINGS = '''
def test_contract(epam_snapshot):
    assert {'a': 1} == epam_snapshot

def test_other(epam_snapshot):
    assert {'b': 2} == epam_snapshot
'''


def test_updating_one_test_keeps_its_siblings_snapshots_as_plain_syrupy_does(pytester):
    (pytester.path / 'tests' / 'a').mkdir(parents=True)
    test_file = pytester.path / 'tests' / 'a' / 't.py'
    test_file.write_text(SIBLINGS)
    pytester.makeini('[pytest]\n')
    stored = pytester.path / 'snapshots' / 'tests' / 'a' / 't'
    args = ('-p', 'no:cacheprovider', '--snapshot-update')

    pytester.runpytest_subprocess(*args, 'tests/a/t.py').assert_outcomes(passed=2)
    assert sorted(p.name for p in stored.iterdir()) == ['test_contract.json', 'test_other.json']
    narrowed = pytester.runpytest_subprocess(*args, 'tests/a/t.py::test_other')
    narrowed.assert_outcomes(passed=1)
    assert 'Deleted' not in narrowed.stdout.str()
    assert sorted(p.name for p in stored.iterdir()) == ['test_contract.json', 'test_other.json']
    # A whole-file run still removes the snapshot of a test that is gone.
    test_file.write_text(SIBLINGS.replace('test_contract', 'test_renamed'))
    pytester.runpytest_subprocess(*args, 'tests/a/t.py').assert_outcomes(passed=2)
    assert sorted(p.name for p in stored.iterdir()) == ['test_other.json', 'test_renamed.json']


def test_the_plugins_fixtures_keep_torch_jit_deprecations_of_the_frameworks_quiet(pytester):
    pytester.makepyfile(test_user='''
def test_built(epam_context):
    assert epam_context.model is not None
''')
    result = pytester.runpytest_subprocess('-p', 'no:cacheprovider', '--epam-batch-size', '1',
                                           '-W', 'default::DeprecationWarning')
    result.assert_outcomes(passed=1)
    assert 'torch.jit' not in result.stdout.str(), result.stdout.str()
