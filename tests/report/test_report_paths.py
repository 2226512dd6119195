"""``--json``/``--junit`` never overwrite an input or a file of another kind, and an unwritable
path is refused before the run (``epam_guard.report.paths``), all through ``epam-guard check``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from epam_guard.cli import main
from epam_guard.model.context import default_config_path
from epam_guard.report.console import EXIT_UNUSABLE
from epam_guard.report.paths import refuse_unsafe


@pytest.fixture
def config(tmp_path: Path) -> Path:
    copy = tmp_path / 'cfg.py'
    shutil.copy(default_config_path(), copy)
    return copy


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line ``epam-guard check ARGV`` is refused with, before anything ran."""
    assert main(['check', *argv]) == EXIT_UNUSABLE
    captured = capsys.readouterr()
    assert captured.out == ''  # not even the header: nothing ran
    line = captured.err.strip()
    assert line.count('\n') == 0 and 'Traceback' not in line
    return line


@pytest.mark.parametrize('flag', ['--json', '--junit'])
def test_the_config_itself_is_refused(capsys, config, flag):
    before = config.read_bytes()
    line = refused(capsys, str(config), flag, str(config))
    assert f'{flag} {config} is the config' in line
    assert config.read_bytes() == before


def test_a_json_file_the_config_imports_is_refused(capsys, tmp_path, config):
    base = tmp_path / 'bases' / 'settings.json'
    base.parent.mkdir()
    base.write_text(json.dumps({'seed_hint': 1}))
    middle = tmp_path / 'middle.py'
    middle.write_text("_base_ = ['bases/settings.json']\n")
    top = tmp_path / 'top.py'
    top.write_text(f"_base_ = ['middle.py', {str(config)!r}]\n")
    line = refused(capsys, str(top), '--json', str(base))
    assert f'--json {base} is a file the config {top.resolve()} imports' in line
    assert json.loads(base.read_text()) == {'seed_hint': 1}


def test_the_hierarchy_file_is_refused(capsys, tmp_path, config):
    spec = tmp_path / 'groups.json'
    spec.write_text(json.dumps([0] * 30 + [1] * 30))
    line = refused(capsys, str(config), '--hierarchy', str(spec), '--json', str(spec))
    assert 'is the the --hierarchy file' not in line and 'is the --hierarchy file' in line


@pytest.mark.parametrize(('flag', 'content'), [
    ('--json', b'\x80\x02checkpoint bytes'), ('--json', b'print("a script")\n'),
    ('--junit', b'{"a": "JSON, not XML"}'), ('--junit', b'<unclosed')])
def test_an_existing_file_of_another_kind_is_refused(capsys, tmp_path, config, flag, content):
    precious = tmp_path / 'precious.out'
    precious.write_bytes(content)
    line = refused(capsys, str(config), flag, str(precious))
    assert f'{flag} {precious} exists and is not a' in line and 'refusing to overwrite' in line
    assert precious.read_bytes() == content


def test_both_reports_on_one_path_are_refused(capsys, tmp_path, config):
    out = tmp_path / 'report'
    assert 'name the same file' in refused(capsys, str(config), '--json', str(out),
                                           '--junit', str(out))
    assert not out.exists()


@pytest.mark.skipif(not Path('/sys').is_dir(), reason='needs /sys, unwritable even for root')
def test_an_unwritable_path_is_refused_before_the_run(capsys, config):
    line = refused(capsys, str(config), '--junit', '/sys/epam-guard-junit.xml')
    assert 'cannot be written' in line


def test_earlier_reports_and_new_paths_are_accepted_and_left_as_they_were(tmp_path, config):
    report, junit, new = tmp_path / 'r.json', tmp_path / 'j.xml', tmp_path / 'new.json'
    report.write_text(json.dumps({'results': []}))
    junit.write_text('<testsuite name="epam-guard"/>')
    refuse_unsafe({'json': report, 'junit': junit}, config)
    refuse_unsafe({'json': new, 'junit': None}, config)
    assert not new.exists()  # the probe removes what it created
    assert report.read_text() == json.dumps({'results': []})
