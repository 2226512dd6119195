"""How the ``runner`` check words a failed run, without a Runner (milliseconds)."""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

import pytest

from epam_guard.checks import runner
from epam_guard.checks._launch import located
from epam_guard.probe.frames import is_library_frame


class UserBlock:
    """Stands for a user's module: this test file is user code to the guard."""

    def __init__(self, width: int) -> None:
        raise ValueError(f'width {width} is odd')  # USER LINE


USER_LINE = next(n for n, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                 if line.endswith('# USER LINE'))
#: A framework that re-raises in its own words (compiled as if it lived in MMEngine).
FRAMEWORK = compile(
    'def build(cls, **kwargs):\n'
    '    try:\n'
    '        return cls(**kwargs)\n'
    '    except Exception as exc:\n'
    '        raise type(exc)(f"class `{cls.__name__}` in {cls.__module__}: {exc}") from exc\n',
    str(Path(pytest.__file__).parents[1] / 'mmengine' / 'registry' / 'wrapping.py'), 'exec')


def raised(function, *args) -> BaseException:
    try:
        function(*args)
    except Exception as exc:
        return exc
    raise AssertionError('it did not raise')


def test_the_location_is_the_innermost_user_frame():
    exc = raised(UserBlock, 3)
    assert located(exc) == f'ValueError: width 3 is odd (test_runner_errors.py:{USER_LINE})'


def test_a_framework_rewrap_keeps_the_message_and_finds_the_user_line():
    namespace: dict = {}
    exec(FRAMEWORK, namespace)
    exc = raised(lambda: namespace['build'](UserBlock, width=5))
    frames = traceback.extract_tb(exc.__traceback__)
    assert frames[-1].filename.endswith('wrapping.py') and is_library_frame(frames[-1].filename)
    assert located(exc) == ('ValueError: class `UserBlock` in test_runner_errors: width 5 is '
                            f'odd (test_runner_errors.py:{USER_LINE})')


def test_without_user_frames_the_innermost_frame_is_named():
    exc = raised(int, 'x')
    assert located(exc).startswith("ValueError: invalid literal for int() with base 10: 'x'")
    assert 'test_runner_errors.py' in located(exc)  # the raise site is this test
    exc = raised(sys.modules['json'].loads, '{')
    assert located(exc).startswith('JSONDecodeError: Expecting property name')
    assert '(test_runner_errors.py:' in located(exc)  # json's own frames are library frames


def observed(stage: str, metrics: dict | None, iterations: int = 0) -> runner.Observer:
    observer = runner.Observer()
    observer.stage, observer.metrics, observer.train_iters = stage, metrics, iterations
    return observer


def test_an_error_before_validation_is_the_headline_not_the_missing_metric():
    findings = runner.run_findings(observed('training iteration 1', None),
                                   'RuntimeError: boom (model.py:12)', ['acc/top1'])
    assert [(f.rule, f.message) for f in findings] == [
        ('6', 'the Runner failed during training iteration 1: RuntimeError: boom (model.py:12)')]


def test_a_save_best_key_validation_lacks_explains_the_keyerror_after_it():
    findings = runner.run_findings(observed('after validation', {'acc/top1': 0.0}, 1),
                                   "KeyError: 'acc/top_1'", ['acc/top_1'])
    assert [f.rule for f in findings] == ['4']
    assert "did you mean 'acc/top1'?" in findings[0].message


@pytest.mark.parametrize('metrics', [None, {'acc/top1': 0.0}])
def test_a_run_without_error_or_iteration_fails(metrics):
    findings = runner.run_findings(observed('done', metrics), None, None)
    assert [f.message for f in findings] == ['the Runner finished without a training iteration']
