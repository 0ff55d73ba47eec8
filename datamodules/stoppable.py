"""A DataLoader that SIGTERM interrupts while it waits for data.

Lightning stops a run on SIGTERM (what SLURM sends before a requeue or at the time limit) at the next batch
boundary, which a run waiting for data (a stalled `pipe:` URL, a hung file system) never reaches.
"""

from __future__ import annotations

from torch.utils.data import DataLoader

from lightning_aapt.signals import sigterm_stops


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
