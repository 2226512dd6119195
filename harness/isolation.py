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

__all__ = ['backend_flags', 'captured_console', 'cpu_math', 'environment_variables',
           'mmengine_instances', 'preserved_state', 'quiet_console', 'quiet_mmengine',
           'random_state', 'recorded_writes', 'written_paths']


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
