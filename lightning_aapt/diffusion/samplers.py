"""Samplers of the rectified flow, all through one signature: `sampler(velocity_fn, noise, timesteps)`.

`velocity_fn(x_t, t, step)` returns v_hat for the current sample x_t (any shape), the scalar timestep t
(0-dim tensor) and the step index (so a streaming caller can decide which evaluation fills its KV cache).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lightning_aapt.diffusion.flow import euler_step, shift_time

VelocityFn = Callable[[Tensor, Tensor, int], Tensor]


def frames_velocity(model: Callable[..., Tensor], recycled: Tensor | None, text: Tensor | None,
                    controls: Tensor | None = None, caches: list | None = None) -> VelocityFn:
    """The model as a sampler's `velocity_fn`: the velocity of frames x (B, F, C, H, W), every frame at the step's
    t, with their recycled frames (B, F, C, H, W), text (B, L, Dt; None: the cache's prompt) and controls (B, F, A);
    step i attends to `caches[i]` when given (one KV cache per noise level)."""

    def velocity(x: Tensor, t: Tensor, i: int) -> Tensor:
        B, F = x.shape[:2]
        cache = None if caches is None else caches[i]
        return model(x, t.reshape(1, 1).expand(B, F), recycled, text, controls, cache=cache)

    return velocity


def timestep_schedule(num_steps: int, shift: float = 1.0, device: torch.device | str | None = None) -> Tensor:
    """K+1 decreasing timesteps from 1 (noise) to 0 (data), evenly spaced then shifted: (K + 1,)."""
    if num_steps < 1:
        raise ValueError(f"a sampler needs num_steps >= 1, got {num_steps}")
    return shift_time(torch.linspace(1.0, 0.0, num_steps + 1, device=device), shift)


def euler_sample(velocity_fn: VelocityFn, noise: Tensor, timesteps: Tensor) -> Tensor:
    """Euler integration of dx/dt = v from timesteps[0] to timesteps[-1]; K = 1 is the 1-NFE generator.

    With timesteps (1, 0) this is x0_hat = noise - v_hat(noise, 1), AAPT's one-step generator.
    """
    x = noise
    for i in range(len(timesteps) - 1):
        t, t_next = timesteps[i], timesteps[i + 1]
        x = euler_step(x, velocity_fn(x, t, i), t, t_next)
    return x
