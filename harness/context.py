"""Load a config, build its model through the registry, pick a device, seed.

A :class:`GuardContext` is what every check receives: the config, the built
model, the synthetic batch recipe and the device. Anything that makes the
config unusable becomes a :class:`~epam_guard.errors.ConfigError` with a one-line
diagnosis, never a bare traceback.
"""
from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from torch import nn

from .batch import BatchRecipe, recipe_from_config
from .errors import ConfigError, GuardError, one_line
from .options import parse_cfg_options

DEFAULT_CONFIG = 'epam_ntu60.py'


def default_config_path() -> Path:
    """``configs/epam_ntu60.py``, the guard's default target.

    Installed, it ships inside the package as ``epam/configs/``; in a source
    checkout (or when ``epam`` is imported from one) it is the top-level
    ``configs/`` next to ``epam/``.
    """
    import importlib.util

    spec = importlib.util.find_spec('epam')
    package = Path(spec.origin).parent if spec and spec.origin else Path(__file__).parent
    for folder in (package / 'configs', package.parent / 'configs'):
        if (folder / DEFAULT_CONFIG).is_file():
            return folder / DEFAULT_CONFIG
    raise ConfigError(f'the default config {DEFAULT_CONFIG} is not installed next to epam '
                      f'({package}); pass a config path')


@dataclass
class GuardSettings:
    """What the user asked for; everything else is derived from the config."""

    config: Path = field(default_factory=default_config_path)
    device: str = 'cpu'
    size: str = 'tiny'
    batch_size: int = 4
    views: int | None = None
    cfg_options: dict[str, Any] = field(default_factory=dict)
    import_paths: list[str] = field(default_factory=list)
    label_api: str = 'gt_label'
    seed: int = 0
    timeout: float = 300.0
    only: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)

    @classmethod
    def from_namespace(cls, ns: Any, prefix: str = '') -> GuardSettings:
        """Settings from parsed argparse/pytest options named ``{prefix}{name}``."""

        def get(name: str, default: Any = None) -> Any:
            return getattr(ns, f'{prefix}{name}', default)

        config = get('config')
        return cls(
            config=Path(config) if config else default_config_path(),
            device=get('device'),
            size=get('size'),
            batch_size=get('batch_size'),
            views=get('views'),
            cfg_options=parse_cfg_options(get('cfg_options')),
            import_paths=list(get('import_path') or []),
            label_api=get('label_api'),
            seed=get('seed'),
            timeout=get('timeout'),
            only=list(get('only') or []),
            skip=list(get('skip') or []),
        )


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` -> a usable :class:`torch.device`."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise GuardError(
            f'--device {name}: no CUDA device is visible (torch.cuda.is_available() '
            'is False); use --device cpu, or --device auto to take CUDA when present')
    if name != 'cpu' and not name.startswith('cuda'):
        raise GuardError(f'--device must be cpu, cuda or auto, but got {name!r}')
    return torch.device(name)


def load_config(path: Path, cfg_options: dict[str, Any] | None = None,
                import_paths: list[str] | None = None) -> Config:
    """Read an MMEngine config, honouring ``custom_imports`` and overrides."""
    for folder in reversed(import_paths or []):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'config {path} does not exist or is not a file')
    try:
        path.read_bytes()
    except OSError as exc:
        raise ConfigError(f'config {path} cannot be read: {exc.strerror}') from exc
    make_mmaction_importable()
    try:
        cfg = Config.fromfile(str(path))
    except ImportError as exc:
        raise _import_failure(path, exc) from exc
    except Exception as exc:  # a config is arbitrary Python: any error is the user's
        reason = one_line(exc, location=False)
        raise ConfigError(f'config {path} cannot be parsed: {reason}') from exc
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
        if any(key.split('.')[0] == 'custom_imports' for key in cfg_options):
            _import_custom_modules(cfg, path)  # Config.fromfile imported the file's own only
    if 'model' not in cfg or not isinstance(cfg.model, dict):
        raise ConfigError(f'config {path} has no `model` dict to build')
    return cfg


def _import_failure(path: Path, exc: ImportError) -> ConfigError:
    reason = one_line(exc, location=False)
    return ConfigError(f'config {path}: custom_imports failed ({reason}); install the module '
                       'or pass its folder with --import-path')


def _import_custom_modules(cfg: Config, path: Path) -> None:
    from mmengine.utils import import_modules_from_strings

    try:
        import_modules_from_strings(**cfg.custom_imports)
    except ImportError as exc:
        raise _import_failure(path, exc) from exc


def make_mmaction_importable() -> None:
    """Apply the MMAction2 1.2.0 shim and import its models (registering them)."""
    with warnings.catch_warnings():
        # mmcv-lite has no compiled ops; MMAction2 imports one it never uses here.
        warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention')
        from epam.compat import ensure_mmaction_models_importable

        ensure_mmaction_models_importable()
        import mmaction.models  # noqa: F401


@contextmanager
def quiet_mmengine(level: int = logging.WARNING) -> Iterator[None]:
    """Hide MMEngine's per-parameter init reports; warnings still show."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def build_model(cfg: Config, device: torch.device) -> nn.Module:
    """Build ``cfg.model`` through MMAction2's registry, init it and move it."""
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    try:
        with quiet_mmengine():
            model = MODELS.build(cfg.model)
    except KeyError as exc:
        message = str(exc.args[0]) if exc.args else str(exc)
        if 'is not in the' in message:
            missing = message.split(' is not in the')[0].strip('\'" ')
            raise ConfigError(
                f'model type {missing!r} is not registered in MMAction2\'s MODELS registry: '
                'the module that defines it was not imported; add it to the config, '
                f"e.g. custom_imports = dict(imports=['your_package'])") from exc
        raise ConfigError(f'the model cannot be built: KeyError: {message}') from exc
    except Exception as exc:
        raise ConfigError(f'the model cannot be built: {one_line(exc, location=False)}') from exc
    if hasattr(model, 'init_weights'):
        with quiet_mmengine():
            model.init_weights()
    return model.to(device)


def label_hierarchy(cfg: Config) -> Any:
    """The fine->coarse hierarchy the config defines (the one source of CONTRACT §5).

    Taken from the config's ``model.hierarchy`` so that a model which builds
    a different mapping of its own is caught, not trusted.
    """
    from epam.hierarchy import LabelHierarchy

    try:
        return LabelHierarchy.build(cfg.model.get('hierarchy'))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'model.hierarchy is unusable: {exc}') from exc


def seed_everything(seed: int) -> None:
    from mmengine.runner.utils import set_random_seed

    set_random_seed(seed, deterministic=False)


@dataclass
class GuardContext:
    """Everything a check needs. Build it with :func:`build_context`."""

    settings: GuardSettings
    cfg: Config
    model: nn.Module
    device: torch.device
    recipe: BatchRecipe
    hierarchy: Any
    timings: dict[str, float] = field(default_factory=dict)
    #: Recorded forward passes shared between checks (see checks.common.run_pass).
    passes: dict[Any, Any] = field(default_factory=dict, repr=False)

    def fresh_model(self) -> nn.Module:
        """A new model from the same config and seed."""
        seed_everything(self.settings.seed)
        return build_model(self.cfg, self.device)


def build_context(settings: GuardSettings) -> GuardContext:
    """Load, validate sizes (before any forward pass), build and seed."""
    start = time.perf_counter()
    device = resolve_device(settings.device)
    cfg = load_config(settings.config, settings.cfg_options, settings.import_paths)
    recipe = recipe_from_config(cfg, settings.size, settings.batch_size, settings.views,
                                settings.seed, settings.label_api)
    loaded = time.perf_counter()
    seed_everything(settings.seed)
    model = build_model(cfg, device)
    built = time.perf_counter()
    hierarchy = label_hierarchy(cfg)
    return GuardContext(settings, cfg, model, device, recipe, hierarchy,
                        {'config': loaded - start, 'build': built - loaded})
