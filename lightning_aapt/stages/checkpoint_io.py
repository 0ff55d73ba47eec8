"""The CheckpointIO plugin of the stages: checkpoints written atomically, read through the one reader."""

from __future__ import annotations

from pathlib import Path

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_aapt.checkpoints import read_checkpoint
from lightning_aapt.files import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written under a temporary name and renamed into place, so a run killed mid-write never
    leaves a truncated `last.ckpt`; resuming reads through `read_checkpoint`, which names what is wrong with a bad one.
    Use as `trainer.plugins: [{class_path: lightning_aapt.stages.checkpoint_io.AtomicCheckpointIO}]`."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        try:
            with atomic_path(path) as tmp:
                self.write(checkpoint, tmp, storage_options)
        except OSError as err:  # a full disk, a lost mount: say which checkpoint, and that the earlier ones stand
            raise OSError(err.errno, f"checkpoint {path} not written ({err.strerror or err}); the checkpoints "
                          "written before it are intact") from err

    def write(self, checkpoint: dict, tmp: Path, storage_options=None) -> None:
        """Write the checkpoint to its temporary name."""
        super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return read_checkpoint(path, "--ckpt_path")  # on the CPU, as Lightning's own reader
