"""`FVDCallback`: every N validations, the Fréchet (and kernel) distance between generated and real validation clips
(`lightning_aapt.evaluation.generated_vs_real`: the protocol and the numbers; this file: when, and where they go).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
from torch import Tensor

from lightning_aapt.evaluation.generated_vs_real import generated_vs_real
from lightning_aapt.files import write_atomic
from lightning_aapt.metrics.extractors import make_extractor


class FVDCallback(L.Callback):
    """Every `every_n_validations` validations, log `val/fvd` (I3D) or `val/fd_<extractor>` with the kernel
    distance beside it, and write the protocol to `<log_dir>/fd_protocol.json` and TensorBoard text.

    Args:
        every_n_validations: evaluate after validations n, 2n, ... (sanity checks excluded; n = 2 with 4
            validations evaluates at the middle and the end).
        num_clips: generated and real clips compared (split across ranks).
        extractor: "rand3d" (default, offline) or "i3d" (needs `i3d_path`).
        i3d_path: local file of the I3D weights (StyleGAN-V TorchScript or InceptionI3d state dict).
        cache_dir: where real features are cached (default `$XDG_CACHE_HOME/lightning_aapt/real_features`).
    """

    def __init__(self, every_n_validations: int = 1, num_clips: int = 64, extractor: str = "rand3d",
                 i3d_path: str | None = None, cache_dir: str | None = None) -> None:
        self.every_n_validations, self.num_clips, self.cache_dir = every_n_validations, num_clips, cache_dir
        self.extractor = make_extractor(extractor, i3d_path, flag="FVDCallback.i3d_path")
        self._batches: list = []
        self._validations = 0

    def on_validation_epoch_start(self, trainer, module) -> None:
        self._batches = []

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        per_rank = math.ceil(self.num_clips / trainer.world_size)
        if not trainer.sanity_checking and sum(len(b) for b in self._batches) < per_rank:
            self._batches.append(batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if self._validations % self.every_n_validations:
            return
        self.extractor.to(module.device)

        def gather(x: Tensor) -> Tensor:  # (k, ...) per rank -> (world k, ...), rank-major
            return module.all_gather(x.to(module.device)).flatten(0, 1).cpu()

        data = trainer.datamodule

        def generate(batch, batch_idx: int) -> Tensor:  # the stage's own sampling: EMA weights, its context
            return module.predict_step(batch, batch_idx)["latents"]

        values, protocol = generated_vs_real(generate, self._batches, data.codec, self.extractor, self.num_clips,
                                             data.data_dir, self.cache_dir, gather if trainer.world_size > 1 else None,
                                             trainer.world_size, trainer.global_rank, module.device)
        protocol.update(module.sampling_protocol())
        self._batches = []
        for key, value in values.items():
            module.log(f"val/{key}", value, sync_dist=False, rank_zero_only=True)
        if trainer.is_global_zero and trainer.log_dir:
            write_atomic(Path(trainer.log_dir) / "fd_protocol.json", json.dumps(protocol, indent=2).encode())
            writer = getattr(trainer.logger, "experiment", None)
            if hasattr(writer, "add_text"):
                writer.add_text(f"val/{protocol['metric']}_protocol", "\n".join(
                    f"- {k}: {v}" for k, v in protocol.items()), trainer.global_step)
