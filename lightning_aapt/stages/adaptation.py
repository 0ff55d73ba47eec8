"""Stage 1, `DiffusionAdaptation`: the causal model learns next-frame denoising with teacher forcing.

AAPT §2.2 (1): frame f's input is its noisy latent ⊕ the ground-truth frame f-1 ⊕ controls[f], under the
block-causal mask with window and sink; all frames train in parallel in one masked forward. Initialised from
stage 0 (`init_from`) with the recycled-frame channels added at zero.

Layout: `teacher_forcing.py` (frames 1..F-1 trained, frame 0 only recycled), shared with stage 2 and matched
by `StreamingGenerator`.
"""

from __future__ import annotations

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.data import VideoBatch
from lightning_aapt.diffusion import add_noise, flow_matching_loss
from lightning_aapt.stages.base import StageModule
from lightning_aapt.stages.teacher_forcing import teacher_forcing


class DiffusionAdaptation(StageModule):
    """Teacher-forced flow matching of the causal backbone (per-frame timesteps, block-causal mask)."""

    def check_backbone(self, cfg: BackboneConfig) -> None:
        if cfg.bidirectional or not cfg.recycled_input:
            raise ValueError("stage 1 trains the causal form: set model.backbone.bidirectional=false and "
                             "model.backbone.recycled_input=true")

    def per_frame_losses(self, batch: VideoBatch, t, noise, model=None):
        x0, recycled, controls = teacher_forcing(batch.latents, batch.controls)  # (B, F-1, C, H, W)
        v = (model or self.model)(add_noise(x0, noise, t), t, recycled, batch.text, controls)
        return flow_matching_loss(v, x0, noise)  # (B, F-1)
