"""``epam_guard.options``: one declaration for argparse and pytest, values checked on parsing."""
from __future__ import annotations

import argparse

import pytest

from epam_guard.model.config import cfg_option, parse_cfg_options
from epam_guard.options import (
    OPTIONS,
    add_options,
    check_names,
    folder,
    output_file,
    positive_int,
    seconds,
    seed,
)


def parser(prefix: str = '') -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(exit_on_error=False)
    add_options(result.add_argument, prefix)
    return result


def test_the_cli_and_the_prefixed_names_are_declared_from_one_list():
    plain = parser().parse_args([])
    prefixed = parser('epam-').parse_args([])
    for option in OPTIONS:
        assert hasattr(plain, option.dest('')) and hasattr(prefixed, option.dest('epam-'))
    assert plain.size == prefixed.epam_size == 'tiny'
    assert parser('epam-').parse_args(['--epam-batch-size', '3']).epam_batch_size == 3


def test_exclude_leaves_options_out():
    declared: list[str] = []
    add_options(lambda flag, **kwargs: declared.append(flag), exclude=('seed',))
    assert '--seed' not in declared and '--size' in declared


def test_cfg_options_take_several_pairs_on_the_cli_and_one_per_flag_with_a_prefix():
    cli = parser().parse_args(['--cfg-options', 'a=1', 'b=2', '--cfg-options', 'c=3'])
    assert cli.cfg_options == ['a=1', 'b=2', 'c=3']
    prefixed = parser('epam-').parse_known_args(
        ['--epam-cfg-options', 'a=1', 'tests/', '--epam-cfg-options', 'c=3'])
    assert prefixed[0].epam_cfg_options == ['a=1', 'c=3']
    assert prefixed[1] == ['tests/']  # the test path is not taken as a value


@pytest.mark.parametrize('convert, text, message', [
    (positive_int, '0', 'at least 1'),
    (positive_int, 'x', 'whole number'),
    (seed, '-1', 'must be in'),
    (seed, str(2**32), 'must be in'),
    (seconds, 'nan', 'finite'),
    (seconds, '0', 'above 0'),
    (cfg_option, 'novalue', 'KEY=VALUE'),
    (cfg_option, 'a..b=1', 'dotted config key'),
    (cfg_option, 'a=[1,2', 'unbalanced'),
    (cfg_option, "a='x", 'unbalanced quotes'),
    (check_names, 'structure,nope', 'unknown check'),
    (check_names, ',', 'names no check'),
    (check_names, ' , ,', 'names no check'),
    (seconds, '1e15', 'at most 604800 seconds'),
])
def test_bad_values_are_refused_in_one_line(convert, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        convert(text)


def test_good_values_pass_through():
    assert positive_int('2') == 2 and seed('0') == 0 and seconds('1.5') == 1.5
    assert seconds('604800') == 604800.0
    assert cfg_option('model.a=[1, 2]') == 'model.a=[1, 2]'
    assert check_names(' structure , routing') == ['structure', 'routing']


def test_folders_and_output_files_are_checked(tmp_path):
    assert folder(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(argparse.ArgumentTypeError, match='not an existing folder'):
        folder(str(tmp_path / 'nope'))
    assert output_file(str(tmp_path / 'out.json')) == tmp_path / 'out.json'
    with pytest.raises(argparse.ArgumentTypeError, match='is a folder'):
        output_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match='does not exist'):
        output_file(str(tmp_path / 'nope' / 'out.json'))


def test_parse_cfg_options_reads_values_as_mmengine_does():
    assert parse_cfg_options(['a.b=1', 'c=[1,2]', 'd=x']) == {'a.b': 1, 'c': [1, 2], 'd': 'x'}
    assert parse_cfg_options(None) == {}


@pytest.mark.parametrize('argv', [['--only', ','], ['--skip', ','], ['--timeout', '1e15']])
def test_the_cli_refuses_them_before_anything_runs(argv, capsys):
    from epam_guard.cli import main
    from epam_guard.report.console import EXIT_UNUSABLE

    assert main(['check', *argv]) == EXIT_UNUSABLE
    captured = capsys.readouterr()
    assert captured.out == '' and captured.err.count('\n') == 1
