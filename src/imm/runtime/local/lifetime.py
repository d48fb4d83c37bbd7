"""Child processes that cannot outlive the platform."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in a child before exec: the kernel sends it SIGTERM when its parent dies, however
    the parent dies (even SIGKILL), so no replica or nginx is orphaned. Linux ties this to
    the *thread* that forked the child: start children from threads that live as long as
    the platform."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
