"""The pytest plugin, driven through ``pytester``: options, fixtures, snapshots, gpu skips."""
from __future__ import annotations

import json

import pytest

@pytest.fixture(autouse=True)
def _imported_once(default_context):
    """Import the heavy stack in this process first: pytester's in-process runs drop
    modules first imported inside them, and torch cannot be imported twice."""
    import syrupy.extensions.json  # noqa: F401

    import epam_guard.engine  # noqa: F401
    import epam_guard.snapshot  # noqa: F401


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


def test_snapshot_lifecycle_create_pass_change_fail_update(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    stored = pytester.path / 'snapshots' / 'test_user' / 'test_structure.json'

    missing = pytester.runpytest_inprocess(*FAST)
    assert '1 failed, 1 passed' in outcome(missing)
    assert not stored.exists()  # never written without the flag

    assert '2 passed' in outcome(pytester.runpytest_inprocess(*FAST, '--snapshot-update'))
    assert json.loads(stored.read_text())['loss'][0]['shape'][1] == 432
    assert '2 passed' in outcome(pytester.runpytest_inprocess(*FAST))

    for broken in (stored.read_text().replace('432', '2048', 1), '{"loss": [tru'):
        stored.write_text(broken)  # stale, then corrupted
        changed = pytester.runpytest_inprocess(*FAST)
        assert '1 failed, 1 passed' in outcome(changed)
        changed.stdout.fnmatch_lines(['*run `pytest --snapshot-update` and review*'])
        assert stored.read_text() == broken  # a failing comparison leaves the file alone

    assert '2 passed' in outcome(pytester.runpytest_inprocess(*FAST, '--snapshot-update'))
    assert '2048' not in stored.read_text()


def test_gpu_marked_tests_skip_with_a_reason_without_cuda(pytester):
    torch = pytest.importorskip('torch')
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is visible here')
    pytester.makepyfile(test_user_gpu='''
import pytest

@pytest.mark.gpu
def test_on_cuda(epam_context):
    assert epam_context.device.type == 'cuda'
''')
    result = pytester.runpytest_inprocess('-m', 'gpu', '-rs', '-p', 'no:cacheprovider')
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(['*no CUDA device is visible*'])


def test_options_are_declared_with_one_prefix(pytester):
    result = pytester.runpytest_inprocess('--help')
    text = result.stdout.str()
    assert 'EPAM recognizer contract checks' in text  # the plugin's option group
    for flag in ('--epam-config', '--epam-device', '--epam-size', '--epam-batch-size',
                 '--epam-only', '--epam-cfg-options'):
        assert flag in text
