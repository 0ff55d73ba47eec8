"""SIGTERM ends a run at once and with a failing exit status, wherever it waits.

Lightning notes SIGTERM (what SLURM sends before a requeue or at the time limit) and stops at the next batch
boundary, which a run waiting for data, or inside a validation callback's minutes of streaming, does not reach within
SLURM's grace time; and its `SIGTERMException` carries no exit code, so a stopped `fit` exited 0 and `fit ... && next`
read success. Here a stopped run exits with `SIGTERM_STATUS` (128 + 15, as a shell reports a process SIGTERM ended).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from lightning.pytorch.utilities.exceptions import SIGTERMException

SIGTERM_STATUS = 128 + signal.SIGTERM


@contextmanager
def sigterm_stops(what: str):
    """Within the block, SIGTERM runs the handler in place (Lightning's, which notes it) and then raises Lightning's
    SIGTERMException saying `what` it interrupted. Main thread only; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        if callable(previous):
            previous(signum, frame)
        raise SIGTERMException(f"stopped: SIGTERM while {what}")

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
