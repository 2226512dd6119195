"""Tie a process's life to its parent's: Linux ``PR_SET_PDEATHSIG``, before any heavy import.

Every process the guard runs that another process started (the supervised
worker, the ``ddp`` check's ranks, each rank of a ``torchrun``/``srun`` job)
calls :func:`die_with_parent` as its first act. The kernel then kills it
when the process that started it ends, however that ends (``SIGKILL``
included, which no handler sees). The request is made by the process itself,
against its own parent: a signal set in a process in between (torchrun's
agent, the supervisor) would not reach it.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
#: Exit status of a process whose parent ended before it could arm its lifeline.
ORPHANED = 1


def die_with_parent(parent: int | None = None) -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; whether that was arranged.

    A process whose parent ended before this request would never get the
    signal, so it exits at once instead: when ``parent`` (the pid of the
    process that started this one) is no longer its parent, or, without
    ``parent``, when it has been adopted by PID 1.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    # After the request: a parent that ends from here on kills this process.
    if orphaned(parent):
        with contextlib.suppress(OSError):
            os.write(2, b'epam-guard: the process that started this one has ended; stopping\n')
        os._exit(ORPHANED)
    return armed


#: Launchers that may themselves be PID 1 (a container's entry point): their ranks are not
#: orphans when their parent is PID 1.
LAUNCHERS = ('torch.distributed.run', 'torchrun', 'slurmstepd', 'srun')


def orphaned(parent: int | None) -> bool:
    """Whether the process that started this one has already ended.

    Without ``parent`` (a rank started by torchrun or srun, which say nothing
    of their pid) an orphan is a process adopted by PID 1, unless PID 1 is
    the launcher itself. (One adopted by another subreaper cannot be told
    from a child of it; that subreaper reaps it.)
    """
    if parent is not None:
        return os.getppid() != parent
    if os.getppid() != 1:
        return False
    try:
        with open('/proc/1/cmdline', 'rb') as file:
            init = file.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return False  # cannot tell: better a rank that runs than one that never starts
    return not any(name in init for name in LAUNCHERS)
