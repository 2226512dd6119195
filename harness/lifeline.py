"""Tie a process's life to its parent's: Linux ``PR_SET_PDEATHSIG``, before any heavy import."""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; whether that was arranged.

    A belt to the supervisor's braces: whoever kills the process that started
    the ranks (the check's process, torchrun's agent) kills the ranks too.
    When ``parent`` is given and is no longer this process's parent (it ended
    before the request), exit at once.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    return armed
