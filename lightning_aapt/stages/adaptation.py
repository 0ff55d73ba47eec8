"""Stage 1, `DiffusionAdaptation`: the causal model learns next-frame denoising with teacher forcing.

AAPT §2.2 (1): frame f's input is its noisy latent ⊕ the ground-truth frame f-1 (zeros before frame 0),
under the block-causal mask with window and sink; all frames train in parallel in one masked forward.
Initialised from stage 0 (`init_from`) with the recycled-frame channels added at zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.diffusion import add_noise, flow_matching_loss
from lightning_aapt.stages.base import StageModule


def teacher_forced_recycled(x0: Tensor) -> Tensor:
    """Ground-truth previous frames: (B, F, C, H, W) -> frame f-1 at position f, zeros at position 0."""
    return torch.cat([torch.zeros_like(x0[:, :1]), x0[:, :-1]], dim=1)


class DiffusionAdaptation(StageModule):
    """Teacher-forced flow matching of the causal backbone (per-frame timesteps, block-causal mask)."""

    def check_backbone(self, cfg: BackboneConfig) -> None:
        if cfg.bidirectional or not cfg.recycled_input:
            raise ValueError("stage 1 trains the causal form: set model.backbone.bidirectional=false and "
                             "model.backbone.recycled_input=true")

    def per_frame_losses(self, batch, t, noise):
        x0 = batch.latents  # (B, F, C, H, W)
        v = self.model(add_noise(x0, noise, t), t, teacher_forced_recycled(x0), batch.text, batch.controls)
        return flow_matching_loss(v, x0, noise)  # (B, F)
