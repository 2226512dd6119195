"""Processes the guard started, or that its runs left: stopped as a whole tree, reaped, and
their end described in words."""
from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
from typing import Any


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``), so none escapes to PID 1.

    Only the CLI's own process calls this: it changes how the process's
    descendants are re-parented, which a host process (pytest) should decide.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def stop_tree(pid: int) -> list[int]:
    """Stop ``pid`` and every descendant: freeze them all, then kill and reap. Returns the pids."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return []
    procs: dict[int, Any] = {}
    for _ in range(3):  # freeze, then look again for children started meanwhile
        found = [root, *root.children(recursive=True)] if root.is_running() else []
        new = [p for p in found if p.pid not in procs]
        if not new:
            break
        for proc in new:
            procs[proc.pid] = proc
            with contextlib.suppress(psutil.Error):
                proc.suspend()
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(list(procs.values()), timeout=5)
    return list(procs)


def reap_orphans() -> list[int]:
    """Stop and reap whatever descendants this process still has (adopted orphans included)."""
    import psutil

    stopped: list[int] = []
    for child in psutil.Process().children():
        stopped += stop_tree(child.pid)
    return stopped


def describe_exit(returncode: int) -> str:
    """``killed by SIGSEGV (segmentation fault)`` / ``exited with status 3``."""
    if returncode < 0:
        sig = signal.Signals(-returncode)
        what = {signal.SIGSEGV: 'segmentation fault', signal.SIGKILL: 'killed, e.g. out of memory',
                signal.SIGABRT: 'abort', signal.SIGBUS: 'bus error'}.get(sig)
        return f'was killed by {sig.name}' + (f' ({what})' if what else '')
    if returncode == 0:
        return 'exited with status 0 before finishing (os._exit in model code?)'
    return f'exited with status {returncode}'
