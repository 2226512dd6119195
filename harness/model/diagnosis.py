"""One line for every failure to import or build a model, pointing at the user's own code.

Whatever a fork raises while its packages are imported or its model is built
becomes one :class:`~epam_guard.contract.errors.GuardError` whose message names the
innermost frame of the user's code (``path:line  code``; frames inside the
installed torch, MMEngine, MMAction2, MMCV, NumPy, the standard library and
the guard are skipped), the rule where one applies, and the fix where it is
known:

- an ``assert`` on the MMCV/MMEngine version (as in every MMAction2
  ``mmaction/__init__.py``): which versions the code wants, and the pip line;
- a NumPy 1 idiom that NumPy 2 refuses: that the code wants ``numpy<2``;
- ``.cuda()`` hard-wired into the model on a machine without CUDA: a model
  defect (CONTRACT §6), :class:`ModelDefectError`, exit 1.
"""
from __future__ import annotations

import difflib
import re
import traceback
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from ..contract.errors import ConfigError, GuardError
from ..contract.profiles import Rule
from ..probe.frames import is_library_frame

#: Type names the reference plugin ``epam`` registers (``custom_imports=['epam']``).
REFERENCE_TYPES = ('EPAMRecognizer', 'EPAMBackbone', 'EPAMHierarchicalHead', 'XShiftNet',
                   'PoseXShiftNet', 'FeatureRenovationLoss', 'HierarchyTreeLoss')
_VERSION_ASSERT = re.compile(
    r'(?P<pkg>MMCV|MMEngine)==(?P<found>\S+) is used but incompatible\. '
    r'Please install (?P<want>[^\n]+?)\.?$', re.MULTILINE)
_NUMPY2 = re.compile(
    r"module 'numpy' has no attribute|was removed in the NumPy 2|"
    r'only 0-dimensional arrays can be converted|only length-1 arrays can be converted|'
    r'only integer scalar arrays can be converted')
_NO_CUDA = re.compile(
    r'Torch not compiled with CUDA enabled|Found no NVIDIA driver|No CUDA GPUs are available|'
    r'CUDA driver initialization failed|no CUDA-capable device')
_SHOWN = 300


class ModelDefectError(GuardError):
    """The model broke a rule before any check could run (e.g. ``.cuda()`` at build time).

    The CLI exits 1 (a failed check), not 2 (unusable input), and still writes
    its reports. ``rule`` is the contract section broken.
    """

    exit_code = 1

    def __init__(self, rule: Rule, message: str) -> None:
        super().__init__(f'[{rule}] {message}')
        self.rule = rule


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, the original cause first."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 8:
        found.append(current)
        current = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)
    return found[::-1]


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the user's code in ``exc`` or what caused it."""
    for error in _chain(exc):
        frames = [frame for frame in traceback.extract_tb(error.__traceback__)
                  if not is_library_frame(frame.filename)]
        if frames:
            return frames[-1]
        # A SyntaxError in the user's file has no traceback frame of its own.
        if isinstance(error, SyntaxError) and error.filename \
                and not is_library_frame(error.filename):
            return traceback.FrameSummary(error.filename, error.lineno or 0, '<module>',
                                          line=(error.text or '').strip())
    return None


def where(exc: BaseException) -> str:
    """``path:line  code`` of :func:`user_frame` (path relative to the working directory)."""
    frame = user_frame(exc)
    if frame is None:
        return ''
    path = Path(frame.filename)
    try:
        shown = str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    code = (frame.line or '').strip()
    return f'{shown}:{frame.lineno}' + (f'  {code}' if code else '')


def message_of(exc: BaseException) -> str:
    """``Type: first line of the message``, bounded."""
    lines = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip()
    first = lines.splitlines()[0] if lines else ''
    text = f'{type(exc).__name__}: {first}'.rstrip(': ')
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + '...'


def _distribution(package: str) -> str:
    """The pip name that provides ``mmcv`` (mmcv-lite or mmcv) or ``mmengine``."""
    if package.lower() == 'mmcv':
        for name in ('mmcv-lite', 'mmcv'):
            try:
                metadata.version(name)
                return name
            except metadata.PackageNotFoundError:
                continue
        return 'mmcv-lite'
    return package.lower()


def _version_fix(exc: BaseException) -> str | None:
    for error in _chain(exc):
        found = _VERSION_ASSERT.search(str(error))
        if found:
            package, want = found['pkg'], found['want'].replace(' ', '')
            dist = _distribution(package)
            spec = want.replace(package.lower(), '', 1).replace(package, '', 1)
            return (f'the MMAction2 it imports wants {package.lower()} {spec.replace(",", ", ")} '
                    f'but {package}=={found["found"]} is installed; '
                    f"pip install '{dist}{spec}'")
    return None


def _numpy_fix(exc: BaseException) -> str | None:
    import numpy

    if int(numpy.__version__.split('.')[0]) < 2:
        return None
    if any(_NUMPY2.search(str(error)) for error in _chain(exc)):
        return (f'a NumPy 1 idiom fails on NumPy {numpy.__version__}: this code wants '
                "numpy<2 (pip install 'numpy<2')")
    return None


def _clash_fix(exc: BaseException) -> str | None:
    """Two imported packages register the same type name (a fork and the reference plugin)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else ''
    found = re.search(r'(\S+) is already registered in (\w+) at (\S+)', text)
    if not found:
        return None
    name, registry, first = found.groups()
    return (f'{name} is registered twice in the {registry} registry (first by {first}); '
            'import only one of the packages that define it in custom_imports')


def hard_wired_cuda(exc: BaseException) -> bool:
    """True when ``exc`` is CUDA being asked for where there is none (CONTRACT §6)."""
    import torch

    return not torch.cuda.is_available() and any(_NO_CUDA.search(str(error))
                                                  for error in _chain(exc))


def cuda_message(exc: BaseException, doing: str) -> str:
    """The §6 one-liner for :func:`hard_wired_cuda` errors (for checks to reuse as findings)."""
    at = where(exc)
    return (f'{doing}: hard-wired to CUDA{f" at {at}" if at else ""} '
            f'({message_of(_chain(exc)[0])}); nothing may be hard-wired to CUDA: create '
            "tensors on the inputs' device (x.new_*, .to(x.device), registered buffers) so "
            'the same code runs on CPU and GPU')


def diagnose(exc: BaseException, doing: str) -> GuardError:
    """One-line error for ``exc``, raised while ``doing`` (e.g. 'the model cannot be built').

    Returns a :class:`ModelDefectError` for a rule the model broke, else a
    :class:`~epam_guard.contract.errors.ConfigError`.
    """
    if isinstance(exc, GuardError):
        return exc
    if hard_wired_cuda(exc):
        return ModelDefectError(Rule.STATE, cuda_message(exc, doing))
    at = where(exc)
    located = f' at {at}' if at else ''
    fix = _version_fix(exc) or _numpy_fix(exc) or _clash_fix(exc)
    if fix:
        return ConfigError(f'{doing}: {fix} ({message_of(exc)}{located})')
    return ConfigError(f'{doing}: {message_of(exc)}{located}')


def registry_names(registry: Any) -> list[str]:
    """Every type name ``registry`` resolves: its own and its parents' (MMEngine's)."""
    names: list[str] = []
    current = registry
    while current is not None:
        names.extend(current.module_dict)
        current = getattr(current, 'parent', None)
    return names


def close_matches(name: str, names: Iterable[str]) -> list[str]:
    """Registered names that look like a misspelling of ``name`` (best first)."""
    names = list(dict.fromkeys(names))
    by_lower = {candidate.lower(): candidate for candidate in names}
    found = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.8)
    return [by_lower[match] for match in found]


def unregistered(missing: str, registry: Any, custom_imports: Any) -> ConfigError:
    """Why ``missing`` is not a registered type, and the fix: a spelling, then an import."""
    matches = close_matches(missing, registry_names(registry))
    if matches:
        shown = ' or '.join(repr(match) for match in matches)
        return ConfigError(f'model type {missing!r} is not registered in MMAction2\'s MODELS '
                           f'registry; did you mean {shown}? (a misspelled type in the config)')
    imports = list((custom_imports or {}).get('imports') or [])
    package = 'epam' if missing in REFERENCE_TYPES and _findable('epam') else 'your_package'
    if imports:
        return ConfigError(
            f'model type {missing!r} is not registered in MMAction2\'s MODELS registry, and '
            f'custom_imports {imports} does not register it; add the module that defines it, '
            f"e.g. custom_imports = dict(imports={[*imports, package]!r})")
    return ConfigError(
        f'model type {missing!r} is not registered in MMAction2\'s MODELS registry: the config '
        'has no custom_imports, so the module that defines it was never imported (a training '
        f"run dies the same way); add custom_imports = dict(imports=['{package}'])")


def _findable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
