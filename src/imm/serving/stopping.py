"""The stop request a model-server process receives by signal.

A signal handler runs in the main thread between two bytecodes, possibly while that thread
is inside ``threading.Event.wait`` holding the event's lock: ``Event.set`` from the handler
then waits for that lock forever (seen: a replica deaf to SIGTERM, its stack a pile of
handlers stuck in ``Event.set``). The flag below takes no lock, so a handler can always set it.
"""

from __future__ import annotations

import signal
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Set once, from a signal handler or any thread; read by polling."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True  # one attribute store: atomic, no lock

    def wait(self, timeout: float) -> bool:
        """True once set; otherwise sleeps ``timeout`` (a signal's handler runs meanwhile,
        and the caller sees the flag on its next poll)."""
        if not self._set:
            time.sleep(timeout)
        return self._set


def stop_on_signals() -> StopFlag:
    """A flag that SIGTERM and SIGINT set. Call from the main thread."""
    flag = StopFlag()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: flag.set())
    return flag
