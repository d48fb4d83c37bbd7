"""A model server's stop signal works wherever it interrupts the main thread's wait.

With a ``threading.Event`` set by the handler, a SIGTERM that lands while the waiting
thread holds the event's lock deadlocks the handler (a replica was found deaf to SIGTERM,
its stack a pile of handlers stuck in ``Event.set``). The script below raises SIGTERM at
the n-th traced line of the wait, for every n; with an Event in place of the flag it hangs
at lines 2 to 9.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = r"""
import signal, sys
from imm.serving.stopping import StopFlag, stop_on_signals

flag = stop_on_signals()
at, lines = int(sys.argv[1]), []

def tracer(frame, event, arg):
    if frame.f_code is not StopFlag.wait.__code__:
        return None
    def local(frame, event, arg):
        if event == "line":
            lines.append(frame.f_lineno)
            if len(lines) == at:
                signal.raise_signal(signal.SIGTERM)
        return local
    return local

sys.settrace(tracer)
while not flag.wait(0.001):
    pass
sys.settrace(None)
print("stopped after", len(lines), "traced lines")
"""


@pytest.mark.parametrize("at", range(1, 13))
def test_sigterm_at_any_line_of_the_wait_stops_the_loop(at: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(at)], stdout=subprocess.PIPE, text=True
    )
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL: a deadlocked handler would swallow another SIGTERM
        proc.communicate()
        pytest.fail(f"the loop never stopped for a SIGTERM at traced line {at}")
    assert proc.returncode == 0
    assert out.startswith("stopped after")
