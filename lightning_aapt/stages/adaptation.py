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
from lightning_aapt.inference.teacher_forcing import teacher_forcing
from lightning_aapt.stages.base import StageModule
from lightning_aapt.stages.randomness import RandomStream


class DiffusionAdaptation(StageModule):
    """Teacher-forced flow matching of the causal backbone (per-frame timesteps, block-causal mask).

    Args (beyond `StageModule`, whose settings it takes as they are):
        context_noise: in training, noise each clip's recycled (context) frames to a level drawn from U(0, this),
            so the model learns to repair an imperfect context, as a stream's own frames are (GameNGen's noise
            augmentation, DIAMOND's `noise_previous_obs`; 0: clean context, as AAPT). The frame it learns to make
            stays the clean one; validation stays clean.
    """

    def __init__(self, backbone: BackboneConfig, context_noise: float = 0.0, **stage) -> None:
        super().__init__(backbone=backbone, **stage)
        if not 0 <= context_noise <= 1:
            raise ValueError(f"model.init_args.context_noise must be in [0, 1], got {context_noise}")
        self.context_noise = context_noise

    def check_backbone(self, cfg: BackboneConfig) -> None:
        if cfg.bidirectional or not cfg.recycled_input:
            raise ValueError("stage 1 trains the causal form: set model.backbone.bidirectional=false and "
                             "model.backbone.recycled_input=true")

    def per_frame_losses(self, batch: VideoBatch, t, noise, model=None):
        x0, recycled, controls = teacher_forcing(batch.latents, batch.controls)  # (B, F-1, C, H, W)
        if self.context_noise and self.training:  # the context at a level drawn per clip, the target clean
            B, F = recycled.shape[:2]
            level = self.sample_rand(B, RandomStream.CONTEXT_LEVEL) * self.context_noise  # (B,)
            eps = self.sample_randn(tuple(recycled.shape), RandomStream.CONTEXT_NOISE, recycled.dtype)
            recycled = add_noise(recycled, eps, level[:, None].expand(B, F))  # (B, F-1, C, H, W)
        v = (model or self.model)(add_noise(x0, noise, t), t, recycled, batch.text, controls)
        return flow_matching_loss(v, x0, noise)  # (B, F-1)
