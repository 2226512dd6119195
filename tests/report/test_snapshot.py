"""``epam_guard.report.snapshot``: where snapshot files go and how floats are written."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from epam_guard.report.snapshot import (
    EPAMSnapshotExtension,
    extension_for,
    relative_stem,
    round_floats,
)


def test_round_floats_rebuilds_containers():
    assert round_floats({'a': [0.123456, (1.0000001, 2)], 'b': 'x'}) == \
        {'a': [0.1235, [1.0, 2]], 'b': 'x'}


def test_snapshots_are_keyed_by_the_test_path_relative_to_the_rootdir(tmp_path):
    extension = extension_for(tmp_path / 'snapshots', tmp_path)
    first = SimpleNamespace(filepath=str(tmp_path / 'tests' / 'a' / 'test_x.py'))
    second = SimpleNamespace(filepath=str(tmp_path / 'tests' / 'b' / 'test_x.py'))
    assert extension.dirname(test_location=first) == \
        str(tmp_path / 'snapshots' / 'tests' / 'a' / 'test_x')
    assert extension.dirname(test_location=first) != extension.dirname(test_location=second)


def test_a_test_file_outside_the_rootdir_keeps_its_name(tmp_path):
    assert relative_stem('/elsewhere/test_y.py', tmp_path) == Path('test_y')
    assert relative_stem(tmp_path / 'test_z.py', tmp_path) == Path('test_z')


def test_extension_for_makes_a_subclass_and_leaves_the_base_alone(tmp_path):
    extension = extension_for(tmp_path / 'snapshots')
    assert issubclass(extension, EPAMSnapshotExtension) and extension is not EPAMSnapshotExtension
    assert extension.rootdir == tmp_path  # the default: the folder holding snapshots/
    assert EPAMSnapshotExtension.root == Path('snapshots')


def test_serialize_writes_rounded_json():
    text = EPAMSnapshotExtension().serialize({'loss': 0.123456789, 'shape': [2, 3]})
    assert json.loads(text) == {'loss': 0.1235, 'shape': [2, 3]}


def test_a_file_narrowed_to_some_tests_names_them(tmp_path):
    from epam_guard.report.snapshot import narrowed_files, selected

    narrowed = narrowed_files(['tests/a/t.py::test_other', 'tests/a/t.py::TestA::test_x[1]',
                               'tests/b'], tmp_path)
    assert narrowed == {str(tmp_path / 'tests' / 'a' / 't.py'): ('test_other', 'TestA.test_x[1]')}
    nodes = narrowed[str(tmp_path / 'tests' / 'a' / 't.py')]
    assert selected('test_other', nodes) and selected('test_other.1', nodes)
    assert selected('TestA.test_x[1]', nodes) and selected('TestA', ['TestA.test_x'])
    assert not selected('test_contract', nodes)


def test_a_failing_snapshot_names_the_key_paths_that_changed(tmp_path):
    from epam_guard.report.snapshot import changed_paths

    stored = {'backbone': {'loss': [{'shape': [2, 432, 4]}, {'shape': [2, 20]}]}, 'n': 1}
    received = {'backbone': {'loss': [{'shape': [2, 432, 4]}, {'shape': [2, 12]}]}, 'm': 1}
    assert list(changed_paths(stored, received)) == [
        'backbone.loss[1].shape[1]: snapshot 20, received 12',
        'm: received, not in the snapshot', 'n: in the snapshot, not received']
    assert list(changed_paths([1, 2], [1])) == ['(top level): 2 items in the snapshot, 1 received']
    extension = extension_for(tmp_path / 'snapshots', tmp_path)()
    lines = list(extension.diff_lines(json.dumps(received), json.dumps(stored)))
    assert lines[0] == 'changed at backbone.loss[1].shape[1]: snapshot 20, received 12'
    from epam_guard.report.formats import ANSI

    rest = [ANSI.sub('', line) for line in lines[3:]]
    assert any('20' in line for line in rest) and any('12' in line for line in rest)  # syrupy's
