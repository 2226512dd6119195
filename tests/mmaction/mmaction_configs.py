"""The six configs MMAction2 ships that the guard is proven on, with their weights off.

Tests under ``tests/mmaction/`` import it by name (pytest puts the folder of a
conftest on ``sys.path``) or take the fixtures of ``conftest.py``. The ids are
stable: ``rgbpose``, ``posec3d``, ``stgcn``, ``tsn``, ``tsm``, ``slowonly``.

Weights are turned off the way a user would on the command line:
``load_from=None`` always, and ``model.backbone.pretrained=None`` only where
the config (with its ``_base_`` files) names a URL there. STGCN's backbone
takes no ``pretrained`` at all, and SlowOnly's Kinetics config already sets
it to None over its base, so neither gets it. A backbone that loads 2-D
weights whatever ``pretrained`` says (``ResNetTSM``'s ``pretrained2d``, True
by default) also gets ``pretrained2d=False``.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Config id -> path under the wheel's ``mmaction/.mim/configs``.
CONFIGS: dict[str, str] = {
    'rgbpose': 'skeleton/posec3d/rgbpose_conv3d/rgbpose_conv3d.py',
    'posec3d': 'skeleton/posec3d/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py',
    'stgcn': 'skeleton/stgcn/stgcn_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py',
    'tsn': 'recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py',
    'tsm': 'recognition/tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py',
    'slowonly': 'recognition/slowonly/slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb.py',
}
IDS: tuple[str, ...] = tuple(CONFIGS)


def configs_root() -> Path:
    """``mmaction/.mim/configs`` of the installed wheel (found without importing mmaction,
    whose import registers models and costs seconds)."""
    import importlib.util

    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError('mmaction is not installed in this environment')
    return Path(next(iter(spec.submodule_search_locations))) / '.mim' / 'configs'


def _names_url(value: Any) -> bool:
    """A ``pretrained`` entry that downloads: ``https://...``, ``torchvision://...``."""
    return isinstance(value, str) and '://' in value


@dataclass(frozen=True)
class MMActionConfig:
    """One shipped config: its id, path, and the overrides that turn its weights off."""

    id: str
    path: Path
    cfg_options: dict[str, Any]

    @property
    def cli_args(self) -> list[str]:
        """``['--cfg-options', 'load_from=None', ...]`` for ``epam-guard check``."""
        return ['--cfg-options', *(f'{key}={value}' for key, value in self.cfg_options.items())]


@functools.cache
def mmaction_config(config_id: str) -> MMActionConfig:
    """The shipped config ``config_id`` (one of :data:`IDS`), weights off as derived from it."""
    if config_id not in CONFIGS:
        raise KeyError(f'unknown MMAction2 config id {config_id!r}; choose from {", ".join(IDS)}')
    from mmengine.config import Config

    path = configs_root() / CONFIGS[config_id]
    if not path.is_file():
        raise FileNotFoundError(f'{path} is not in the installed MMAction2 wheel')
    backbone = Config.fromfile(os.fspath(path)).model.get('backbone') or {}
    options: dict[str, Any] = {'load_from': None}
    if _names_url(backbone.get('pretrained')):
        options['model.backbone.pretrained'] = None
        if backbone.get('pretrained2d', _init_default(backbone.get('type'), 'pretrained2d')):
            options['model.backbone.pretrained2d'] = False
    return MMActionConfig(config_id, path, options)


def _init_default(registry_type: Any, name: str) -> Any:
    """The default of ``name`` in the ``__init__`` of the backbone registered as
    ``registry_type``; None when it takes no such argument."""
    import inspect

    from mmaction.registry import MODELS

    from epam_guard.model.context import make_mmaction_importable

    make_mmaction_importable()  # the wheel's own import fix, then its models registered
    parameter = inspect.signature(MODELS.get(registry_type).__init__).parameters.get(name)
    return None if parameter is None else parameter.default
