"""A config MMEngine cannot read is called unparsable, never a failed ``custom_imports``."""
from __future__ import annotations

import pytest

from epam_guard.contract.errors import ConfigError
from epam_guard.model.context import load_config


@pytest.mark.parametrize(('files', 'said'), [
    ({'cfg.py': "_base_ = ['nothere.py']\nmodel = dict(type='X')\n"},
     'cannot be parsed: FileNotFoundError'),
    ({'cfg.py': "_base_ = ['base.py']\n", 'base.py': 'model = dict(type="X"\n'},
     'cannot be parsed: SyntaxError'),
    ({'cfg.py': 'model = dict(type=Undefined)\n'},
     "cannot be parsed: NameError: name 'Undefined' is not defined at "),
])
def test_a_config_that_cannot_be_read_is_called_unparsable(tmp_path, files, said):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / 'cfg.py')
    message = str(raised.value)
    assert message.startswith(f'config {tmp_path / "cfg.py"} {said}'), message
    assert 'custom_imports' not in message and '\n' not in message


def test_a_custom_import_that_fails_is_still_named_so(tmp_path):
    (tmp_path / 'cfg.py').write_text("custom_imports = dict(imports=['no_such_epam_plugin'])\n"
                                     "model = dict(type='X')\n")
    with pytest.raises(ConfigError, match="custom_imports failed .*'no_such_epam_plugin'"):
        load_config(tmp_path / 'cfg.py')
