"""Faults on purpose: a checkpoint writer that dies, or finds the disk full, halfway through one write; a validation
callback that takes a minute."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Literal

import yaml

from callbacks.base import EveryNValidations
from lightning_aapt.stages.checkpoint_io import AtomicCheckpointIO
from tests.helpers_cli import checkpointing_only, tiny_config


class FailingCheckpointIO(AtomicCheckpointIO):
    """`AtomicCheckpointIO` whose `at`-th write stops halfway: half the file is under the temporary name when the
    process is killed (fault "kill": SIGKILL, no cleanup) or the write fails (fault "disk_full": ENOSPC, as a full
    disk raises it)."""

    def __init__(self, at: int, fault: Literal["kill", "disk_full"]) -> None:
        super().__init__()
        self.at, self.fault, self.writes = at, fault, 0

    def write(self, checkpoint: dict, tmp: Path, storage_options=None) -> None:
        super().write(checkpoint, tmp, storage_options)
        self.writes += 1
        if self.writes != self.at:
            return
        tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])  # what reached the disk
        if self.fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))


def resumable_config(tmp_path: Path, data: Path, name: str, steps: int = 8, plugin: dict | None = None,
                     stage: str = "stage1", **model_args) -> Path:
    """A tiny run of `stage` in tmp_path/name, checkpointed every 3 steps, with two data-loader workers (each
    replays its share on resume); `plugin`: the checkpoint writer (class_path/init_args) in place of
    AtomicCheckpointIO; `model_args`: model.init_args (default: no init_from)."""
    (tmp_path / name).mkdir()
    config = tiny_config(stage, tmp_path / name, data, steps=steps, val_every=1000,
                         **(model_args or {"init_from": None}))
    spec = yaml.safe_load(config.read_text())
    spec["data"]["init_args"].update(num_workers=2, shuffle_buffer=4)
    config.write_text(yaml.safe_dump(spec))
    return checkpointing_only(config, 3, plugin)


class SlowCallback(EveryNValidations):
    """An evaluation callback that works for a minute (as a long-horizon drift at scale does), after writing
    `started` to say it began."""

    def __init__(self, started: str) -> None:
        super().__init__()
        self.started = Path(started)

    def evaluate(self, trainer, module, batch) -> None:
        self.started.write_text("evaluating")
        time.sleep(60)
