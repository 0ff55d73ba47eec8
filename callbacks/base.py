"""`EveryNValidations`: what the evaluation callbacks share — keep the first validation batch, then act after
validations n, 2n, ... (sanity checks excluded) on global rank 0; none after SIGTERM, and SIGTERM ends one at once."""

from __future__ import annotations

import lightning as L

from lightning_aapt.signals import sigterm_stops


class EveryNValidations(L.Callback):
    def __init__(self, every_n_validations: int = 1) -> None:
        if every_n_validations < 1:
            raise ValueError(f"every_n_validations must be >= 1, got {every_n_validations}")
        self.every_n_validations = every_n_validations
        self._batch = None
        self._validations = 0

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0:
            self._batch = batch

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._batch is None:
            return
        self._validations += 1
        due = self._validations % self.every_n_validations == 0 and trainer.is_global_zero
        if due and not getattr(trainer, "received_sigterm", False):
            with sigterm_stops(f"evaluating ({type(self).__name__})"):  # minutes of streams: SIGTERM ends them
                self.evaluate(trainer, module, self._batch)

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule, batch) -> None:
        raise NotImplementedError
