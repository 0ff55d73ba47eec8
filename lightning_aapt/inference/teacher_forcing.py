"""Teacher forcing: how a clip of real frames is laid out for the causal model (the one definition).

Notation: B batch, F clip frames, C latent channels, H/W latent height/width, A control width.

A clip of F frames trains positions 0..F-2 = frames 1..F-1, each recycling the real frame before it (frames
0..F-2) and driven by its own controls (frame f with controls[f]). Frame 0 is never a target, as at inference,
where the user's first frame enters through the recycled channels of the first pass (AAPT) and is never
generated: no loss is spent on an unconditional frame that streaming never makes, and position 0 (the sink)
holds the same kind of frame in training, streaming (`StreamingGenerator`) and the stage-3 rollout.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from lightning_aapt.backbone import recycled_frames
from lightning_aapt.diffusion import euler_sample, frames_velocity, timestep_schedule


class TeacherForcing(NamedTuple):
    """The inputs of a teacher-forced clip, one entry per trained position (F - 1 of them)."""

    targets: Tensor  # (B, F-1, C, H, W): frames 1..F-1
    recycled: Tensor  # (B, F-1, C, H, W): frames 0..F-2, each the ground truth before its target
    controls: Tensor | None  # (B, F-1, A): controls[1..F-1]


def teacher_forcing(latents: Tensor, controls: Tensor | None) -> TeacherForcing:
    """The streaming layout of a clip: latents (B, F, C, H, W), controls (B, F, A) -> F - 1 trained positions."""
    if latents.shape[1] < 2:
        raise ValueError(f"teacher forcing needs clips of at least 2 frames (data.num_frames); got {latents.shape[1]}")
    targets = latents[:, 1:]
    recycled = recycled_frames(latents[:, 0], targets)  # frames 0..F-2
    return TeacherForcing(targets, recycled, None if controls is None else controls[:, 1:])


def teacher_forced_frames(model: torch.nn.Module, latents: Tensor, text: Tensor, controls: Tensor | None,
                          noise: Tensor, steps: int = 1, shift: float = 1.0) -> Tensor:
    """The generator under teacher forcing: frames 1..F-1 of a clip (B, F, C, H, W) sampled from `noise`
    (B, F-1, C, H, W) in one masked forward per step, each position recycling the clip's frame before it. Every
    position shares the step's t, as training presents context (one t per clip), so `steps` = K Euler steps on
    `timestep_schedule(K, shift)` give what a K-step stream gives after the same frames; K = 1 (the 1-NFE
    generator) is x0 = noise - v(noise, 1). Gradients flow when enabled (stage 3's teacher-forced variant, AAPT
    App. D); stage 3's distillation term samples its teacher this way on the generator's own frames."""
    tf = teacher_forcing(latents, controls)
    velocity = frames_velocity(model, tf.recycled, text, tf.controls)
    return euler_sample(velocity, noise, timestep_schedule(steps, shift, device=noise.device))  # (B, F-1, C, H, W)


def teacher_forced_video(model: torch.nn.Module, video: Tensor, text: Tensor, controls: Tensor | None,
                         noises: Tensor, steps: int = 1, shift: float = 1.0) -> Tensor:
    """`teacher_forced_frames` indexed like the video (B, R, C, H, W): frame 0 is the given one, frame f >= 1 is made
    from the true frames before it, `noises[:, f]` and `controls[:, f]` (`noises` per video frame, frame 0's unused),
    as stage 3 lays its videos out (`adversarial/rollout.py`)."""
    made = teacher_forced_frames(model, video, text, controls, noises[:, 1:], steps, shift)  # (B, R - 1, C, H, W)
    return torch.cat([video[:, :1], made], dim=1)


@torch.no_grad()
def next_frame_errors(model: torch.nn.Module, latents: Tensor, text: Tensor, controls: Tensor | None,
                      noise: Tensor) -> tuple[Tensor, Tensor]:
    """`teacher_forced_frames` against the truth, and the floor of copying the previous frame: two per-frame latent
    MSEs (B, F-1). `noise` (B, F-1, C, H, W)."""
    predicted = teacher_forced_frames(model, latents, text, controls, noise)
    error = (predicted.float() - latents[:, 1:].float()).pow(2).flatten(2).mean(-1)
    copy = (latents[:, :-1].float() - latents[:, 1:].float()).pow(2).flatten(2).mean(-1)
    return error, copy
