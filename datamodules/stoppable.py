"""A DataLoader that SIGTERM interrupts while it waits for data.

Lightning stops a run on SIGTERM (what SLURM sends before a requeue or at the time limit) at the next batch
boundary, which a run waiting for data (a stalled `pipe:` URL, a hung file system) never reaches.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader


class StoppableLoader(DataLoader):
    """A DataLoader whose wait for the next batch SIGTERM ends at once, after Lightning's own handler has noted
    the signal."""

    def __iter__(self):
        batches = super().__iter__()
        while True:
            with sigterm_stops("waiting for the next batch of data"):
                try:
                    batch = next(batches)
                except StopIteration:
                    return
            yield batch


@contextmanager
def sigterm_stops(what: str):
    """Within the block, SIGTERM runs the handler in place (Lightning's) and then raises Lightning's
    SIGTERMException (exit status 1, saying `what` it interrupted). Main thread only; elsewhere a no-op."""
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
