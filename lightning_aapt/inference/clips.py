"""How a generator samples clips like a batch's, for a stage's `predict` (and so the FD and video callbacks) and for
`eval`: a causal model streams each clip after its first real frames (fed through the cache) driven by the clip's
own controls; a bidirectional one samples the clip jointly.

Notation: B batch, F frames, K context frames, C latent channels, H/W latent height/width.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.data import VideoBatch
from lightning_aapt.diffusion import euler_sample, frames_velocity, timestep_schedule
from lightning_aapt.inference.streaming import stream_after_context


def sample_clips(model: CausalVideoDiT, batch: VideoBatch, context_frames: int, steps: int, shift: float,
                 seed: int) -> Tensor:
    """Clips like the batch's, (B, F, C, H, W), reproducible from `seed`: a causal model keeps the first K real
    frames and streams the rest (`inference.stream_after_context`); a bidirectional one samples every frame jointly from
    noise, `steps` Euler steps."""
    B, F = batch.latents.shape[:2]
    if not model.cfg.bidirectional:
        streamed = stream_after_context(model, batch.text, batch.latents[:, :context_frames], batch.controls,
                                        batch.latents.shape[1], steps, shift, seed)
        return torch.cat([batch.latents[:, :context_frames], streamed], dim=1)
    generator = torch.Generator(device=batch.latents.device).manual_seed(10_000 + seed)
    noise = torch.randn(batch.latents.shape, generator=generator, device=batch.latents.device)

    velocity = frames_velocity(model, None, batch.text, batch.controls)
    return euler_sample(velocity, noise, timestep_schedule(steps, shift, device=noise.device))


def sampling_protocol(model: CausalVideoDiT, steps: int, context_frames: int, ema: bool) -> dict:
    """How `sample_clips` sampled, for the protocol recorded beside a generated-vs-real number."""
    conditioning = ("text and actions of each validation clip, the whole clip sampled jointly from noise"
                    if model.cfg.bidirectional else
                    f"first {context_frames} real frames (context), text and actions of each validation clip")
    return {"generator_steps_per_frame": steps,
            "conditioning": f"{conditioning}; {'EMA' if ema else 'trained'} weights"}
