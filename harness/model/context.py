"""Load a config, build its model through the registry, pick a device, seed.

A :class:`GuardContext` is what every check receives: the config, the built
model, the synthetic batch recipe and the device. Anything that makes the
config unusable becomes a :class:`~epam_guard.contract.errors.ConfigError` with a one-line
diagnosis, never a bare traceback.
"""
from __future__ import annotations

import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from mmengine.config import Config
from torch import nn

from ..contract.errors import ConfigError, GuardError
from ..contract.profiles import Profile, choose_profile
from ..contract.referee import Hierarchy, build_hierarchy, guard_options, hierarchy_given
from ..probe import state
from ..probe.isolation import CudaPlacements, contained_cuda, library_homes, quiet_mmengine
from .batch import BatchRecipe, config_clip_lengths, describe, recipe_from_config
from .compat import ensure_mmaction_models_importable, mmaction_root, mmaction_version
from .config import default_config_path, parse_cfg_options
from .diagnosis import diagnose, message_of, unregistered, user_frame, where
from .memory import check_batch_fits
from .passes import run_pass


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
    #: gt_label (1.2), gt_labels (1.0/1.1) or auto: the config's epam_guard.label_api,
    #: else what the installed ActionDataSample offers.
    label_api: str = 'auto'
    #: ``--hierarchy``: inline JSON or a file (see :mod:`epam_guard.contract.referee`).
    hierarchy: str | None = None
    seed: int = 0
    timeout: float = 300.0
    #: none, or pytorch / slurm when the guard runs as one rank of a job (MMEngine's names).
    launcher: str = 'none'
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
            label_api=get('label_api') or 'auto',
            hierarchy=get('hierarchy'),
            seed=get('seed'),
            timeout=get('timeout'),
            launcher=get('launcher') or 'none',
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
    """Read an MMEngine config, honouring ``custom_imports`` and overrides.

    ``import_paths`` go first on ``sys.path`` before anything imports
    MMAction2, so a fork's own ``mmaction`` and plugins are the ones checked.
    """
    use_import_paths(import_paths or [])
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'config {path} does not exist or is not a file')
    try:
        path.read_bytes()
    except OSError as exc:
        raise ConfigError(f'config {path} cannot be read: {exc.strerror}') from exc
    make_mmaction_importable()
    try:
        # Read first, import second: a config that cannot be read is never called a failed
        # custom_imports (a missing _base_ file, a NameError in the config itself).
        cfg = Config.fromfile(str(path), import_custom_modules=False)
    except Exception as exc:  # a config is arbitrary Python
        raise _unparsable(path, exc) from exc
    if cfg.get('custom_imports'):
        _import_custom_modules(cfg, path, import_paths or [])
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as exc:  # a key that is not there, or not a dict: one line
            reason = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            raise ConfigError(f'--cfg-options cannot be applied to {path}: '
                              f'{reason.splitlines()[0]}') from exc
        if any(key.split('.')[0] == 'custom_imports' for key in cfg_options):
            _import_custom_modules(cfg, path, import_paths or [])
    if 'model' not in cfg or not isinstance(cfg.model, dict):
        raise ConfigError(f'config {path} has no `model` dict to build')
    return cfg


def use_import_paths(folders: list[str]) -> None:
    """Put ``folders`` first on ``sys.path``; refuse when ``mmaction`` came from elsewhere.

    A fork's ``mmaction`` can only take effect if no other ``mmaction`` is
    imported yet: Python keeps the first one it imported for the life of the
    process.
    """
    for folder in reversed(folders):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    loaded = sys.modules.get('mmaction')
    if loaded is None:
        return
    locations = list(getattr(loaded, '__path__', None) or [])
    loaded_from = Path(locations[0] if locations
                       else getattr(loaded, '__file__', '') or '.').resolve()
    for folder in folders:
        fork = Path(folder, 'mmaction').resolve()
        if (fork / '__init__.py').is_file() and loaded_from != fork:
            raise ConfigError(
                f'mmaction was already imported from {loaded_from} before --import-path '
                f'{folder} (which holds its own mmaction) could take effect, so the fork would '
                'not be the one checked; run epam-guard from the command line (a fresh '
                'interpreter), or put the folder first on PYTHONPATH before starting Python')


def _unparsable(path: Path, exc: BaseException) -> GuardError:
    """A config (or one of its ``_base_`` files) that MMEngine cannot read, as one line."""
    frame = user_frame(exc)
    return ConfigError(f'config {path} cannot be parsed: {message_of(exc)}'
                       + (f' at {where(exc)}' if frame is not None else ''))


def _config_failure(path: Path, exc: BaseException, import_paths: list[str]) -> GuardError:
    """A config whose custom_imports fail, as one line."""
    # MMEngine wraps the cause twice ('Failed to import X', then a sys.path listing).
    while isinstance(exc, ImportError) and str(exc).startswith('Failed to import') \
            and exc.__context__ is not None:
        exc = exc.__context__
    if isinstance(exc, ModuleNotFoundError) and exc.name and user_frame(exc) is None:
        return _not_found(path, exc, import_paths)
    return diagnose(exc, f'config {path}: custom_imports failed')


def _not_found(path: Path, exc: ModuleNotFoundError, import_paths: list[str]) -> ConfigError:
    searched = (f'neither installed nor in --import-path {", ".join(import_paths)}'
                if import_paths else 'not installed')
    hint = ('check the folder holds the package' if import_paths
            else 'install the module or pass its folder with --import-path')
    return ConfigError(f'config {path}: custom_imports failed (No module named {exc.name!r}: '
                       f'{searched}); {hint}')


def _import_custom_modules(cfg: Config, path: Path, import_paths: list[str]) -> None:
    from mmengine.utils import import_modules_from_strings

    try:
        import_modules_from_strings(**cfg.custom_imports)
    except Exception as exc:
        raise _config_failure(path, exc, import_paths) from exc


def make_mmaction_importable() -> None:
    """Apply the MMAction2 wheel fix and import its models (registering them).

    Whatever the ``mmaction`` found first on the path raises on import (a
    fork's MMCV version assert, a NumPy 1 idiom) becomes one line.
    """
    with warnings.catch_warnings():
        # mmcv-lite has no compiled ops; MMAction2 imports one it never uses here.
        warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention')
        try:
            ensure_mmaction_models_importable()
            import mmaction.models  # noqa: F401
        except Exception as exc:
            root = mmaction_root()
            raise diagnose(exc, f'mmaction cannot be imported (from {root})') from exc


def build_model(cfg: Config, device: torch.device) -> nn.Module:
    """Build ``cfg.model`` through MMAction2's registry, init it and move it.

    Raises:
        ConfigError: the model cannot be built (one line, at the user's code).
        ModelDefectError: building it broke a rule (e.g. ``.cuda()`` hard-wired).
    """
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    doing = 'the model cannot be built'
    try:
        with quiet_mmengine():
            model = MODELS.build(cfg.model)
        if hasattr(model, 'init_weights'):
            with quiet_mmengine():
                model.init_weights()
        return model.to(device)
    except KeyError as exc:
        message = str(exc.args[0]) if exc.args else str(exc)
        if 'is not in the' in message:
            missing = message.split(' is not in the')[0].strip('\'" ')
            raise unregistered(missing, MODELS, cfg.get('custom_imports')) from exc
        raise diagnose(exc, doing) from exc
    except Exception as exc:
        raise diagnose(exc, doing) from exc


def label_hierarchy(cfg: Config, option: str | None = None) -> Hierarchy | None:
    """The guard's own fine->coarse mapping (CONTRACT §5), never the model's helper.

    From ``--hierarchy``, the config's guard-only ``epam_guard.hierarchy``,
    ``model.hierarchy``, else NTU-60's for a head with coarse classes; None for
    a model that has no coarse classes and is given no hierarchy (see
    :mod:`epam_guard.contract.referee`).
    """
    return build_hierarchy(cfg, option)


def contract_profile(cfg: Config, model: nn.Module,
                     hierarchy: str | None = None) -> tuple[Profile, str]:
    """The profile ``model`` is judged by and why (``hierarchy``: ``--hierarchy``); an
    unknown name is a one-line error."""
    try:
        return choose_profile(guard_options(cfg), model, cfg.model, hierarchy)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


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
    #: The guard's fine->coarse mapping; None for a model with no coarse classes, or where
    #: the contract profile has no hierarchy.
    hierarchy: Hierarchy | None
    timings: dict[str, float] = field(default_factory=dict)
    #: The contract profile the model is judged by
    #: (:func:`epam_guard.contract.profiles.choose_profile`)
    #: and why it was chosen.
    profile: Profile = field(default_factory=lambda: choose_profile({}, None)[0])
    profile_reason: str = ''
    #: Why the recipe differs from what ``--size`` asked for (printed by the CLI), or None.
    size_note: str | None = None
    #: Recorded forward passes shared between checks (see model.passes.run_pass).
    passes: dict[Any, Any] = field(default_factory=dict, repr=False)
    #: CUDA placements hard-wired into model code, kept on the CPU where there is no CUDA
    #: (see :func:`epam_guard.probe.isolation.contained_cuda`); None: not contained.
    cuda: CudaPlacements | None = field(default=None, repr=False)
    #: What libraries created, instead of in the home, while the context was built.
    library_homes: dict[str, Any] = field(default_factory=dict)
    #: Told when a check's own processes move on (the ddp ranks); a supervised run's clock
    #: restarts on it. None: nobody listens.
    progress: Callable[[str], None] | None = field(default=None, repr=False)

    def require_hierarchy(self) -> Hierarchy:
        """The hierarchy, for a check whose rules are about coarse classes.

        Raises:
            ConfigError: the model has none (its head predicts no coarse classes and
                none was given), in one line.
        """
        if self.hierarchy is None:
            raise ConfigError(
                'this check compares coarse classes, but the model has no hierarchy: its head '
                'predicts no coarse classes (cls_head.num_coarse_classes) and none was given '
                '(--hierarchy, epam_guard.hierarchy, model.hierarchy)')
        return self.hierarchy

    def fresh_model(self) -> nn.Module:
        """A new model from the same config and seed."""
        seed_everything(self.settings.seed)
        with contained_cuda(self.cuda, 'building the model'):
            return build_model(self.cfg, self.device)


def resolve_label_api(requested: str | None, cfg: Config) -> str:
    """``gt_label`` or ``gt_labels``: asked for, else the config's guard key, else what the
    installed MMAction2's ``ActionDataSample`` offers (``set_gt_label`` is 1.2's)."""
    from mmaction.structures import ActionDataSample

    has_gt_label = hasattr(ActionDataSample, 'set_gt_label')
    if requested in (None, 'auto'):
        requested = guard_options(cfg).get('label_api') or (
            'gt_label' if has_gt_label else 'gt_labels')
    if requested not in ('gt_label', 'gt_labels'):
        raise ConfigError(f'label_api must be gt_label or gt_labels, but got {requested!r}')
    if requested == 'gt_label' and not has_gt_label:
        raise ConfigError(
            f'label API gt_label is MMAction2 1.2\'s, but the mmaction at {mmaction_root()} '
            f'({mmaction_version() or "unknown version"}) has no ActionDataSample.gt_label; '
            'use --label-api gt_labels')
    return requested


def build_context(settings: GuardSettings, fit: bool = True) -> GuardContext:
    """Load, validate sizes (before any forward pass), build and seed.

    At ``tiny`` size (and with ``fit``) one loss pass is tried first (the checks
    reuse it); when it fails inside the model while the config's real clip
    lengths work, the context keeps those clip lengths (shrinking space only)
    and says so in ``size_note``. What libraries create on first use while the
    config is read and the model built goes to a temporary folder where the
    home has none (:func:`~epam_guard.probe.isolation.library_homes`; YAPF's grammar
    cache, matplotlib's config), listed in ``library_homes``.
    """
    with library_homes() as homes:
        ctx = _build_context(settings, fit)
        ctx.library_homes = homes.created()
    return ctx


def _build_context(settings: GuardSettings, fit: bool) -> GuardContext:
    start = time.perf_counter()
    device = resolve_device(settings.device)
    cfg = load_config(settings.config, settings.cfg_options, settings.import_paths)
    label_api = resolve_label_api(settings.label_api, cfg)
    recipe = recipe_from_config(cfg, settings.size, settings.batch_size, settings.views,
                                settings.seed, label_api)
    # A hierarchy the user names is held against the head before the model is built: a model
    # that checks it too would otherwise stop first, in its own words.
    given = label_hierarchy(cfg, settings.hierarchy) \
        if hierarchy_given(cfg, settings.hierarchy) else None
    loaded = time.perf_counter()
    seed_everything(settings.seed)
    placements = CudaPlacements(device)
    with contained_cuda(placements, 'building the model'):
        model = build_model(cfg, device)
    profile, reason = contract_profile(cfg, model, settings.hierarchy)
    # Only a profile with a hierarchy needs one (and a head of 400 classes has none).
    hierarchy = (given or label_hierarchy(cfg, settings.hierarchy)) if profile.hierarchy else None
    built = time.perf_counter()
    ctx = GuardContext(settings, cfg, model, device, recipe, hierarchy,
                       {'config': loaded - start, 'build': built - loaded}, cuda=placements,
                       profile=profile, profile_reason=reason)
    if settings.size == 'tiny' and fit:
        with contained_cuda(placements, 'probing the sizes'):
            fit_clip_lengths(ctx)
        ctx.timings['fit'] = time.perf_counter() - built
    return ctx


def settle_sizes(ctx: GuardContext, fit: bool = True, memory: bool = True) -> None:
    """The size probe of a ``check`` run: refuse a batch that cannot fit, then fit the clip
    lengths (``tiny`` only), in that order.

    The memory estimate runs one sample of one view (seconds, whatever
    ``--batch-size`` asks), so a batch too large is refused before any pass
    at that size; the clip-length probe then runs at the asked batch (the
    checks reuse its passes). A probe that changed the clip lengths changes
    the estimate: it is made again.
    """
    with contained_cuda(ctx.cuda, 'probing the sizes'):
        if memory:
            check_batch_fits(ctx)
        if not fit or ctx.settings.size != 'tiny':
            return
        before = ctx.recipe
        fit_clip_lengths(ctx)
        if memory and ctx.recipe != before:
            check_batch_fits(ctx)


#: Errors that state a size or shape disagreement (torch's, and the usual hand-written ones).
SHAPE_ERROR = re.compile(
    r'size of tensor a \(\d+\) must match|sizes? of tensors must match|shape .* is invalid for '
    r'input of size|cannot be multiplied|expected .*size|size mismatch|must have shape|'
    r'does not match|out of bounds|not divisible|Given groups|Calculated padded input size|'
    r'Expected .* to have .* (elements|channels)|shapes? .*mismatch', re.IGNORECASE)


def shape_error(error: str | None) -> bool:
    """Whether a pass's error states a shape disagreement."""
    return error is not None and SHAPE_ERROR.search(error) is not None


def _gist(error: str | None) -> str | None:
    """An error with its numbers blanked: the same failure at another size reads the same."""
    return None if error is None else re.sub(r'\d+', '#', error)


def _frames(recipe: BatchRecipe) -> str:
    """The clip lengths a note names: RGB and pose frames (multimodal), else the sample."""
    if recipe.input_kind.packed:
        return f'{recipe.rgb_frames} RGB / {recipe.pose_frames} pose frames'
    return describe(recipe)


def _crops(recipe: BatchRecipe) -> str:
    return f' and {recipe.crop}x{recipe.crop} crops' if recipe.input_kind.packed else ''


def fit_clip_lengths(ctx: GuardContext) -> None:
    """Keep the config's clip lengths when the model fails at tiny ones with a shape error
    that disappears at its own.

    A backbone that hard-codes its clip lengths (e.g. 16 RGB / 48 pose frames)
    cannot run at ``tiny``; its shape errors would otherwise be reported as
    head or label defects by every check. The decision rests on shapes alone:
    a pass (loss, else tensor) that fails at ``tiny`` with a shape error, run
    again at the config's clip lengths, no longer fails that way (it passes,
    or fails for another reason the checks will report). Whatever else the
    model gets wrong (labels at inference, a CUDA placement) does not change
    it. The passes tried here are the ones the checks read (recorded once per
    recipe), so a model that runs at ``tiny`` pays nothing.
    """
    saved = state.copy_tensors(ctx.model)
    try:
        tiny = ctx.recipe
        failed = next((run for run in (run_pass(ctx, mode) for mode in ('loss', 'tensor'))
                       if shape_error(run.error)), None)
        if failed is None:
            return  # it runs at tiny, or fails for a reason that is not a shape
        timed = config_clip_lengths(ctx)
        if (timed.rgb_frames, timed.pose_frames) == (tiny.rgb_frames, tiny.pose_frames):
            return
        ctx.recipe = timed
        again = run_pass(ctx, failed.mode)
        if shape_error(again.error) and _gist(again.error) == _gist(failed.error):
            ctx.recipe = tiny  # not a matter of clip lengths: the checks say what
            return
        ctx.size_note = (
            f'at --size tiny ({_frames(tiny)}) the model fails ({failed.error}) where the '
            f'config\'s clip lengths {"work" if again.error is None else "do not fail that way"}: '
            f'checking with {_frames(timed)}{_crops(timed)} (space shrunk only)')
    finally:
        state.restore(ctx.model, saved)
        ctx.model.zero_grad(set_to_none=True)
