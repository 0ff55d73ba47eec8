"""`DiscriminatorProbeCallback`: what stage 3's discriminator can tell apart, logged as it trains
(`lightning_aapt.evaluation.critic`: the probes; this file: when, and where the numbers go)."""

from __future__ import annotations

import lightning as L

from callbacks.base import EveryNValidations
from lightning_aapt.evaluation.critic import critic_margins


class DiscriminatorProbeCallback(EveryNValidations):
    """Every `every_n_validations` validations (global rank 0), judge real toy-world clips against the same clips
    with their objects painted out, their agent painted out, and a 4x4 block texture, and log per probe
    `val/critic/<probe>_margin` (logit(real) - logit(changed) over the frames after the context, at the
    discriminator's training noise levels) and `val/critic/<probe>_p_real_higher`. A generator learns only what
    these separate: margins near 0 mean the discriminator gives it no reason to keep objects. Nothing is logged on
    data the toy world cannot re-render.

    Args:
        every_n_validations: run after validations n, 2n, ... (sanity checks excluded).
        num_clips: validation scenes judged.
    """

    def __init__(self, every_n_validations: int = 1, num_clips: int = 64) -> None:
        super().__init__(every_n_validations)
        self.num_clips = num_clips

    def setup(self, trainer, module, stage: str) -> None:
        if getattr(module, "discriminator", None) is None:
            raise ValueError("DiscriminatorProbeCallback probes stage 3's discriminator: remove it from the configs "
                             "of stages without one")

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule, batch) -> None:
        D = module.discriminator
        was_training = D.training
        D.eval()
        margins = critic_margins(D, trainer.datamodule.data_dir, self.num_clips, batch.latents.shape[1],
                                 times=(), context_frames=min(module.context_frames, batch.latents.shape[1] - 1),
                                 timestep_shift=module.disc_cfg.timestep_shift)
        D.train(was_training)
        for probe, values in (margins or {}).items():
            module.log(f"val/critic/{probe}_margin", values["margin@t~train"], rank_zero_only=True)
            module.log(f"val/critic/{probe}_p_real_higher", values["p_real_higher@t~train"], rank_zero_only=True)
