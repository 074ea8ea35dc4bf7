"""A child process's lifetime is its parent's: the measuring child, the round workers and the model
server die with the `bench` process that started them."""

from __future__ import annotations

import os
import sys


def die_with_parent() -> None:
    """If `bench run` is killed (even with SIGKILL), its measuring child must not live on."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            sys.exit(1)
