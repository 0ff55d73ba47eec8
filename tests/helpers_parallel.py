"""Data and runners for the multi-process tests: the same global batches whatever the number of ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, IterableDataset

from datamodules.web_video import ClipStream, WebVideoDataModule, collate_clips

ROOT = Path(__file__).resolve().parents[1]


class GlobalBatchData(WebVideoDataModule):
    """Training batch b is clips [b G, (b + 1) G) of the train split in file order (G = batch_size x world
    size); rank r gets the r-th slice of batch_size clips. So 1 rank of batch 4 sees exactly what 2 ranks of
    batch 2 see together: the test isolates the strategy from the data split."""

    def train_dataloader(self):
        rank, world = self._rank_and_world_size()
        stream = ClipStream(self.urls("train"), self.shapes, self.num_frames, resampled=False, shuffle=False,
                            random_crop=False)
        clips = list(stream)
        size = self.batch_size * world
        batches = [collate_clips(clips[b * size + rank * self.batch_size : b * size + (rank + 1) * self.batch_size])
                   for b in range(len(clips) // size)]
        return DataLoader(Batches(batches), batch_size=None)


class Batches(IterableDataset):
    """Ready-made batches (iterable, so Lightning adds no distributed sampler)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def cli_command(*args: str) -> dict:
    """`python -m lightning_aapt ARGS` for a fresh process, as subprocess keywords: this checkout importable, one
    thread per op, output captured as text."""
    return {"args": [sys.executable, "-m", "lightning_aapt", *args], "cwd": ROOT, "text": True,
            "env": {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}}


def run_cli(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m lightning_aapt ARGS` in a fresh process (Lightning's launcher re-runs this command per rank);
    `check`: a non-zero exit fails with the command's output."""
    result = subprocess.run(**cli_command(*args), capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-6000:]}")
    return result


def scalars(run_dir: Path, tag: str) -> dict[int, float]:
    """{step: value} of one TensorBoard scalar of a run."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return {e.step: e.value for e in events.Scalars(tag)}
