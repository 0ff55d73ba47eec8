"""Stage 0, `BidirectionalPretraining`: a bidirectional DiT learns the toy world by flow matching.

It stands in for the pretrained video model a user brings (docs/architecture.md §5): all frames are denoised jointly
with full attention; AAPT starts from such a model.
"""

from __future__ import annotations

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.data import VideoBatch
from lightning_aapt.diffusion import add_noise, flow_matching_loss
from lightning_aapt.stages.base import StageModule


class BidirectionalPretraining(StageModule):
    """Flow matching of whole clips with full attention (no cache, no recycled frames)."""

    def check_backbone(self, cfg: BackboneConfig) -> None:
        if not cfg.bidirectional or cfg.recycled_input:
            raise ValueError("stage 0 trains the pretrained-teacher form: set model.backbone.bidirectional=true "
                             "and model.backbone.recycled_input=false")

    def per_frame_losses(self, batch: VideoBatch, t, noise, model=None):
        x0 = batch.latents  # (B, F, C, H, W)
        v = (model or self.model)(add_noise(x0, noise, t), t, None, batch.text, batch.controls)
        return flow_matching_loss(v, x0, noise)  # (B, F)
