"""Process-wide state the checks change, and how each change is put back.

The guard runs model code and MMEngine's ``Runner`` inside the caller's
process (a pytest session, or the CLI's worker). Whatever they change for the
whole process (thread counts, floating-point flags, random generators,
MMEngine's "current" logger/hub/visualizer/scope, console handlers, the
multiprocessing start method, backend flags, environment variables) is
changed here, in one place, and restored on exit, also when the body raises.

One change cannot be undone: :func:`recorded_writes` installs a Python audit
hook (``sys.addaudithook`` has no removal). It is installed once, on first
use, and returns at once while no recording is open.

Two more belong here because they reach into libraries the model uses:
:func:`contained_cuda` keeps placements hard-wired to CUDA on the check device
(recording each call site) on a machine without CUDA, and :func:`library_homes`
points the caches and config folders libraries create on first use into a
temporary folder when the user's home has none.

Heavy modules (torch, MMEngine, OpenCV) are imported inside the functions
that need them, so importing this module is cheap.
"""
from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import random
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ['CudaPlacements', 'LibraryHomes', 'backend_flags', 'captured_console',
           'contained_cuda', 'cpu_math', 'environment_variables', 'library_homes',
           'mmengine_instances', 'preserved_state',
           'quiet_console', 'quiet_mmengine', 'random_state', 'recorded_writes', 'written_paths']


@contextlib.contextmanager
def cpu_math(device: Any) -> Iterator[None]:
    """One thread with denormals flushed to zero, while NTU-size passes run on the CPU.

    Freshly initialised EPAM layers drive many activations into denormal
    floats, which x86 CPUs compute 10-30x slower. Flushing them changes no
    shape and no decision of the checks. The flag is per thread and the
    intra-op pool's threads were started without it, so this thread runs the
    passes alone: measured on 2 cores, one flushed thread beats two unflushed
    ones by 5x. Thread count and flag are put back on exit (the flag to off,
    torch's default: it cannot be read back).
    """
    import torch

    if getattr(device, 'type', str(device)) != 'cpu':
        yield
        return
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def _current_logger() -> logging.Logger:
    from mmengine.logging import MMLogger

    return MMLogger.get_current_instance()


@contextlib.contextmanager
def quiet_console(level: int = logging.ERROR) -> Iterator[None]:
    """Keep MMEngine's console below ``level`` (dataset notices, deprecations) for a while.

    Only the current ``MMLogger``'s stream handlers are raised; files and
    other loggers are untouched, and the levels are put back on exit.
    """
    handlers = [h for h in _current_logger().handlers if type(h) is logging.StreamHandler]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, level))
    try:
        yield
    finally:
        for handler, old in zip(handlers, levels):
            handler.setLevel(old)


@contextlib.contextmanager
def quiet_mmengine(level: int = logging.WARNING) -> Iterator[None]:
    """Hide MMEngine's per-parameter init reports (below ``level``); warnings still show.

    The current ``MMLogger``'s own level is raised, and put back on exit.
    """
    logger = _current_logger()
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _manager_classes() -> list[type]:
    """``ManagerMixin`` and all its subclasses (MMLogger, MessageHub, Visualizer, DefaultScope)."""
    from mmengine.utils import ManagerMixin

    classes, frontier = [], [ManagerMixin]
    while frontier:
        cls = frontier.pop()
        classes.append(cls)
        frontier.extend(cls.__subclasses__())
    return classes


def manager_instances() -> dict[str, list[str]]:
    """Names of MMEngine's global instances, by class (what :func:`mmengine_instances` keeps)."""
    return {cls.__name__: list(cls.__dict__['_instance_dict'])
            for cls in _manager_classes() if cls.__dict__.get('_instance_dict')}


@contextlib.contextmanager
def mmengine_instances() -> Iterator[None]:
    """Forget the loggers, message hubs, visualizers and scopes created inside; close their files.

    MMEngine keeps each ``ManagerMixin`` class's instances, and so which one
    is "current", in the class attribute ``_instance_dict``. It offers
    ``get_instance``/``get_current_instance`` but no way to drop an instance,
    so this is the one place that reads and restores that private mapping.
    Loggers created inside have their handlers (the run's log file) closed.
    """
    from mmengine.logging import MMLogger

    saved = {cls: dict(cls.__dict__['_instance_dict'])
             for cls in _manager_classes() if '_instance_dict' in cls.__dict__}
    try:
        yield
    finally:
        for cls in _manager_classes():
            instances = cls.__dict__.get('_instance_dict')
            if instances is None:
                continue
            before = saved.get(cls, {})
            for name, instance in list(instances.items()):
                if name not in before and isinstance(instance, MMLogger):
                    for handler in list(instance.handlers):
                        handler.close()
                        instance.removeHandler(handler)
            instances.clear()
            instances.update(before)


@contextlib.contextmanager
def random_state() -> Iterator[None]:
    """Put back Python's, NumPy's and torch's random generators (CUDA's, where initialised)."""
    import numpy as np
    import torch

    saved = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    cuda = (torch.cuda.get_rng_state_all()
            if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.random.set_rng_state(saved[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def backend_flags() -> Iterator[None]:
    """Put back the flags a ``Runner`` sets: cudnn, TF32, deterministic algorithms, cv2 threads,
    the multiprocessing start method."""
    import torch

    cv2: Any
    try:
        import cv2
    except ImportError:  # MMAction2 needs OpenCV; without it there is nothing to put back
        cv2 = None
    cudnn = torch.backends.cudnn
    flags = (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    start_method = multiprocessing.get_start_method(allow_none=True)
    cv2_threads = cv2.getNumThreads() if cv2 is not None else None
    try:
        yield
    finally:
        (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = flags
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != deterministic:
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        if multiprocessing.get_start_method(allow_none=True) != start_method:
            multiprocessing.set_start_method(start_method, force=True)
        if cv2 is not None:
            cv2.setNumThreads(cv2_threads)


@contextlib.contextmanager
def environment_variables() -> Iterator[None]:
    """Put back ``os.environ`` as it was (``OMP_NUM_THREADS`` and the like, set by MMEngine)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@contextlib.contextmanager
def captured_console() -> Iterator[io.StringIO]:
    """Python-level stdout and stderr into a buffer (yielded) for a while."""
    console = io.StringIO()
    with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
        yield console


@contextlib.contextmanager
def preserved_state() -> Iterator[io.StringIO]:
    """Put back everything building and running a ``Runner`` changes process-wide.

    MMEngine registers the run's logger, message hub, visualizer and default
    scope as the "current" instances, seeds Python, NumPy and torch, sets the
    multiprocessing start method, cv2's threads and cudnn flags, may set
    environment variables and warning filters, and logs to the console. The
    console output is captured and yielded (the log file stays in the work
    dir); the rest is restored and the run's log files closed.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(mmengine_instances())
        stack.enter_context(random_state())
        stack.enter_context(backend_flags())
        stack.enter_context(environment_variables())
        stack.enter_context(warnings.catch_warnings())
        yield stack.enter_context(captured_console())


# --- writes to files, as Python's audit hooks see them ---------------------------------------

#: Audit events that create, change or remove a path, with the argument positions of those paths.
WRITE_EVENTS: dict[str, tuple[int, ...]] = {
    'os.mkdir': (0,), 'os.remove': (0,), 'os.rmdir': (0,), 'os.truncate': (0,),
    'os.rename': (0, 1), 'os.symlink': (1,), 'os.link': (1,), 'os.utime': (0,),
    'os.chmod': (0,), 'os.chown': (0,), 'shutil.copyfile': (1,), 'shutil.copytree': (1,),
    'shutil.move': (0, 1), 'shutil.rmtree': (0,),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_recordings: list[list[tuple[str, str]]] = []
_hook_lock = threading.Lock()
_hook_installed = False


#: Events (and argument positions) whose path stops existing under its name.
REMOVALS = {('os.remove', 0), ('os.rmdir', 0), ('shutil.rmtree', 0), ('os.rename', 0),
            ('shutil.move', 0)}


def written_paths(event: str, args: tuple[Any, ...]) -> list[tuple[str, str]]:
    """``('write'|'remove', absolute path)`` for what an audit event changes (empty for reads)."""
    if event == 'open':
        _, mode, flags = args
        writes = (any(c in mode for c in 'wax+') if isinstance(mode, str)
                  else bool(flags & _WRITE_FLAGS))
        positions: tuple[int, ...] = (0,) if writes else ()
    else:
        positions = WRITE_EVENTS.get(event, ())
    changes = []
    for index in positions:
        value = args[index]
        if isinstance(value, int) or value is None:  # a file descriptor: no name to blame
            continue
        name = os.fsdecode(os.fspath(value))
        # A relative name with a directory descriptor (inside shutil.rmtree, which
        # reported its top folder already) cannot be resolved here.
        if not os.path.isabs(name) and event in ('os.remove', 'os.rmdir') and args[-1] != -1:
            continue
        if event == 'os.mkdir' and os.path.lexists(name):  # makedirs(exist_ok=True): no change
            continue
        change = 'remove' if (event, index) in REMOVALS else 'write'
        changes.append((change, os.path.abspath(name)))
    return changes


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _recordings or (event != 'open' and event not in WRITE_EVENTS):
        return
    try:  # an audit hook that raises would abort the caller's operation
        paths = written_paths(event, args)
    except Exception:
        return
    for recording in list(_recordings):
        recording.extend(paths)


@contextlib.contextmanager
def recorded_writes() -> Iterator[list[tuple[str, str]]]:
    """Yield a list collecting ``(change, path)`` for each path this process changes from Python.

    Covers ``open`` for writing (``builtins.open``, ``os.open``, ``pathlib``,
    NumPy and MMEngine's file backends), renames, removals, ``mkdir``,
    ``shutil`` copies and moves, in every thread of the process. Native code
    writing by itself (``torch.save`` to a path name, OpenCV) is not seen.
    """
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
    recording: list[tuple[str, str]] = []
    _recordings.append(recording)
    try:
        yield recording
    finally:
        # by identity: two recordings may hold equal lists
        del _recordings[next(i for i, r in enumerate(_recordings) if r is recording)]


# --- placements hard-wired to CUDA, on a machine without it ----------------------------------

#: torch functions that create a tensor and take ``device=``.
FACTORIES = ('zeros', 'ones', 'empty', 'full', 'rand', 'randn', 'randint', 'randperm', 'arange',
             'linspace', 'logspace', 'eye', 'tensor', 'as_tensor', 'zeros_like', 'ones_like',
             'empty_like', 'full_like', 'rand_like', 'randn_like', 'randint_like')
#: Tensor methods that create a tensor and take ``device=``.
NEW_METHODS = ('new_zeros', 'new_ones', 'new_empty', 'new_full', 'new_tensor')


def _is_cuda(device: Any) -> bool:
    """Whether a ``device`` argument names CUDA (``'cuda'``, ``'cuda:1'``, a torch.device, an
    index: a bare int means a CUDA device to torch)."""
    import torch

    if isinstance(device, bool):
        return False
    if isinstance(device, int):
        return True
    if isinstance(device, str):
        return device.split(':')[0].strip() == 'cuda'
    return isinstance(device, torch.device) and device.type == 'cuda'


def _call_site() -> str:
    """``path:line  code`` of the innermost frame of the user's code calling in (else the
    innermost frame outside this module)."""
    import linecache

    from .frames import is_library_frame

    frame = sys._getframe(1)
    fallback = None
    while frame is not None:
        name = frame.f_code.co_filename
        if fallback is None and name != __file__:
            fallback = frame
        if not is_library_frame(name):
            break
        frame = frame.f_back  # type: ignore[assignment]
    frame = frame or fallback
    if frame is None:
        return '<unknown>'
    path = frame.f_code.co_filename
    try:
        shown = os.path.relpath(path) if not os.path.relpath(path).startswith('..') else path
    except ValueError:
        shown = path
    code = linecache.getline(path, frame.f_lineno).strip()
    return f'{shown}:{frame.f_lineno}' + (f'  {code}' if code else '')


class CudaPlacements:
    """Call sites of CUDA placements kept on ``device`` while :func:`contained_cuda` is active.

    ``sites`` maps ``path:line  code`` to what was called there, how often, and
    during what (``phase``, set by the caller: building the model, a check).
    """

    def __init__(self, device: Any) -> None:
        self.device = device
        self.phase = 'building the model'
        self.sites: dict[str, dict[str, Any]] = {}
        self._reported: set[str] = set()

    def record(self, call: str) -> None:
        site = _call_site()
        seen = self.sites.setdefault(site, {'call': call, 'count': 0, 'phase': self.phase})
        seen['count'] += 1

    def unreported(self) -> list[tuple[str, dict[str, Any]]]:
        """Sites not handed out before, in the order first seen; each is handed out once."""
        new = [(site, seen) for site, seen in self.sites.items() if site not in self._reported]
        self._reported.update(site for site, _ in new)
        return new


_active: list[CudaPlacements] = []
_patch_lock = threading.Lock()
_patched: list[tuple[Any, str, Any]] = []


def _placement() -> CudaPlacements | None:
    return _active[-1] if _active else None


def _kept(call: str, device: Any) -> Any:
    """The check device in place of a CUDA ``device`` (recording the call), else ``device``."""
    active = _placement()
    if active is None or not _is_cuda(device):
        return device
    active.record(call)
    return active.device


def _patch(owner: Any, name: str, replacement: Any) -> None:
    _patched.append((owner, name, owner.__dict__.get(name, _MISSING)))
    setattr(owner, name, replacement)


_MISSING = object()


def _install() -> None:
    """Wrap torch's CUDA placements (once per activation; :func:`_uninstall` puts them back)."""
    import torch
    from torch import nn

    tensor_to, tensor_cuda = torch.Tensor.to, torch.Tensor.cuda
    module_to, module_cuda = nn.Module.to, nn.Module.cuda

    def to_args(call: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if 'device' in kwargs:
            kwargs = {**kwargs, 'device': _kept(call, kwargs['device'])}
        elif args and not isinstance(args[0], (torch.dtype, torch.Tensor)):
            args = (_kept(call, args[0]), *args[1:])
        return args, kwargs

    def t_to(self: Any, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = to_args("Tensor.to('cuda')", args, kwargs)
        return tensor_to(self, *args, **kwargs)

    def t_cuda(self: Any, device: Any = None, *args: Any, **kwargs: Any) -> Any:
        active = _placement()
        if active is None:
            return tensor_cuda(self, device, *args, **kwargs)
        active.record('Tensor.cuda()')
        return tensor_to(self, active.device)

    def m_to(self: Any, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = to_args("Module.to('cuda')", args, kwargs)
        return module_to(self, *args, **kwargs)

    def m_cuda(self: Any, device: Any = None) -> Any:
        active = _placement()
        if active is None:
            return module_cuda(self, device)
        active.record('Module.cuda()')
        return module_to(self, active.device)

    def factory(original: Any, call: str) -> Any:
        def create(*args: Any, **kwargs: Any) -> Any:
            if 'device' in kwargs:
                kwargs['device'] = _kept(call, kwargs['device'])
            return original(*args, **kwargs)

        create.__wrapped__ = original  # type: ignore[attr-defined]
        return create

    _patch(torch.Tensor, 'to', t_to)
    _patch(torch.Tensor, 'cuda', t_cuda)
    _patch(nn.Module, 'to', m_to)
    _patch(nn.Module, 'cuda', m_cuda)
    for name in FACTORIES:
        _patch(torch, name, factory(getattr(torch, name), f"torch.{name}(device='cuda')"))
    for name in NEW_METHODS:
        _patch(torch.Tensor, name,
               factory(getattr(torch.Tensor, name), f"Tensor.{name}(device='cuda')"))


def _uninstall() -> None:
    while _patched:
        owner, name, original = _patched.pop()
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


def contains_cuda(device: Any) -> bool:
    """Whether :func:`contained_cuda` acts for checks on ``device``: only on the CPU, and only
    where torch sees no CUDA (a GPU machine, or ``--device cuda``, runs placements as written)."""
    import torch

    return getattr(device, 'type', str(device)) == 'cpu' and not torch.cuda.is_available()


@contextlib.contextmanager
def contained_cuda(placements: CudaPlacements | None, phase: str | None = None
                   ) -> Iterator[CudaPlacements | None]:
    """Keep CUDA placements in model code on ``placements.device``, recording each call site.

    On a machine without CUDA, ``Tensor.cuda()``, ``Module.cuda()``,
    ``.to('cuda')`` (tensors and modules) and ``device='cuda'`` in torch's
    tensor factories and ``Tensor.new_*`` would raise at the first one and end
    the run; here each is kept on the check device and its call site recorded
    (CONTRACT §6 findings, one per site), so every other defect can still be
    checked. ``phase`` names what runs (for the findings). Inactive (nothing
    patched) for ``None`` or when :func:`contains_cuda` is False. Nested uses
    share one installation; torch is put back when the outermost one ends.
    """
    if placements is None or not contains_cuda(placements.device):
        yield placements
        return
    previous = placements.phase
    if phase is not None:
        placements.phase = phase
    with _patch_lock:
        if not _active:
            _install()
        _active.append(placements)
    try:
        yield placements
    finally:
        placements.phase = previous
        with _patch_lock:
            del _active[next(i for i in range(len(_active) - 1, -1, -1)
                             if _active[i] is placements)]
            if not _active:
                _uninstall()


# --- caches and config folders libraries create on first use ---------------------------------

#: ``(environment variable, its default, who creates it)``: folders third-party code makes in
#: the home on first use (matplotlib's config and font cache, fontconfig's and YAPF's caches,
#: torch's hub and kernel caches). A default may name another entry (``{XDG_CACHE_HOME}``).
LIBRARY_HOMES: tuple[tuple[str, str, str], ...] = (
    ('XDG_CONFIG_HOME', '~/.config', 'XDG config folder (matplotlib and others)'),
    ('XDG_CACHE_HOME', '~/.cache', 'XDG cache folder (matplotlib, fontconfig, YAPF, torch)'),
    ('MPLCONFIGDIR', '{XDG_CONFIG_HOME}/matplotlib', 'matplotlib'),
    ('TORCH_HOME', '{XDG_CACHE_HOME}/torch', 'torch hub'),
    ('TRITON_CACHE_DIR', '~/.triton/cache', 'triton'),
)
#: Entries listed per redirected folder in the report.
LISTED = 10
#: Redirections in force (variable -> (folder, default)), so a nested use reports into them.
_redirected: dict[str, tuple[str, str]] = {}


def _library_default(default: str, environ: dict[str, str | None]) -> str:
    """Where a library would write by default, with the user's own ``environ`` (never a
    redirection of ours)."""
    xdg = {'XDG_CONFIG_HOME': environ.get('XDG_CONFIG_HOME') or '~/.config',
           'XDG_CACHE_HOME': environ.get('XDG_CACHE_HOME') or '~/.cache'}
    return os.path.abspath(os.path.expanduser(default.format(**xdg)))


def _names(folder: str) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


class LibraryHomes:
    """The folders :func:`library_homes` points libraries to, and what they created there."""

    def __init__(self) -> None:
        #: variable -> (folder used, the default it stands for, names already there)
        self.folders: dict[str, tuple[str, str, set[str]]] = {}

    def created(self) -> dict[str, Any]:
        """``{variable: {'instead_of': default, 'created': [names]}}`` for what was made so far
        (only folders that got something)."""
        report: dict[str, Any] = {}
        for name, (used, default, before) in self.folders.items():
            made = sorted(_names(used) - before)
            if made:
                report[name] = {'instead_of': default, 'created': made[:LISTED] + (
                    [f'... {len(made) - LISTED} more'] if len(made) > LISTED else [])}
        return report


@contextlib.contextmanager
def library_homes(folder: str | os.PathLike | None = None) -> Iterator[LibraryHomes]:
    """Point library caches and config folders the home lacks into a temporary folder.

    For each entry of :data:`LIBRARY_HOMES` whose variable is unset and whose
    default folder does not exist (a fresh machine, a CI container with an
    empty ``HOME``), the variable points into ``folder`` (a new temporary
    folder when None, removed on exit) while the body runs: nothing is
    created in the user's home, and nothing the user has is hidden (an
    existing folder is used as it is). Inside another ``library_homes`` the
    outer redirection stays and this one only counts what is created during
    its body. :meth:`LibraryHomes.created` says what was created instead of
    where (call it before the body ends). The variables are put back on exit.
    """
    import shutil
    import tempfile

    own = folder is None
    root = tempfile.mkdtemp(prefix='epam-guard-homes-') if folder is None else os.fspath(folder)
    saved = {name: os.environ.get(name) for name, _, _ in LIBRARY_HOMES}
    homes = LibraryHomes()
    mine: list[str] = []
    try:
        for name, default, _ in LIBRARY_HOMES:
            outer = _redirected.get(name)
            if outer is not None and saved[name] == outer[0]:
                homes.folders[name] = (outer[0], outer[1], _names(outer[0]))
                continue
            path = _library_default(default, saved)
            if saved[name] is None and not os.path.exists(path):
                used = os.path.join(root, name.lower())
                os.environ[name] = used
                _redirected[name] = (used, path)
                homes.folders[name] = (used, path, set())
                mine.append(name)
        yield homes
    finally:
        for name in mine:
            _redirected.pop(name, None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if own:
            shutil.rmtree(root, ignore_errors=True)
