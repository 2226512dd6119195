"""Where the guard's default target lives, found without importing anything heavy."""
from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_CONFIG = 'epam_ntu60.py'


def default_config_path() -> Path | None:
    """``configs/epam_ntu60.py``, or None when neither an install nor a checkout has it.

    Installed, it ships inside the package as ``epam/configs/``; in a source
    checkout it is the top-level ``configs/`` next to ``epam/``. Only the
    package's location is looked up: ``epam`` itself is not imported.
    """
    spec = importlib.util.find_spec('epam')
    if spec is None or not spec.origin:
        return None
    package = Path(spec.origin).parent
    for folder in (package / 'configs', package.parent / 'configs'):
        if (folder / DEFAULT_CONFIG).is_file():
            return folder / DEFAULT_CONFIG
    return None
