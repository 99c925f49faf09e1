"""Processes that must not outlive their parent: Linux's parent-death signal (prctl)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Asks the kernel to send `sig` to this process when its parent goes; False where unsupported.

    The signal fires when the *thread* that started this process exits, so the parent must
    start it from a thread that lives as long as it (its main thread). If the parent is already
    gone (it died before this call), the signal is raised now.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    if os.getppid() != parent_pid:
        signal.raise_signal(sig)
    return True
