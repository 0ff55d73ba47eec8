"""Rectified-flow conventions (docs/architecture.md §4) as pure functions.

x_t = (1 - t) * x0 + t * noise, t in [0, 1] with t = 1 pure noise; the network predicts v = noise - x0;
x0_hat = x_t - t * v_hat. Time shift t' = s t / (1 + (s - 1) t), on [0, 1] (never on [0, 1000]: the formula
assumes t in [0, 1]).
Timesteps t are (B, F), one per frame; latents (B, F, C, H, W).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def _per_frame(t: Tensor, x: Tensor) -> Tensor:
    """(B, F) timesteps broadcast against (B, F, ...) latents."""
    return t.reshape(*t.shape, *([1] * (x.dim() - t.dim()))).to(x.dtype)


def add_noise(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 - t) x0 + t noise, per frame."""
    tt = _per_frame(t, x0)
    return (1 - tt) * x0 + tt * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The regression target v = noise - x0."""
    return noise - x0


def x0_from_velocity(x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
    """x0_hat = x_t - t v."""
    return x_t - _per_frame(t, x_t) * v


def euler_step(x_t: Tensor, v: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """One Euler step of dx/dt = v from t to t_next (t_next < t moves toward data): x_t + (t_next - t) v."""
    return x_t + _per_frame(t_next - t, x_t) * v


def noise_from_velocity(x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
    """noise_hat = x_t + (1 - t) v."""
    return x_t + (1 - _per_frame(t, x_t)) * v


def shift_time(t: Tensor, shift: float) -> Tensor:
    """t' = s t / (1 + (s - 1) t) on [0, 1]: s > 1 spends more steps at high noise (AAPT: s = 24)."""
    if shift <= 0:
        raise ValueError(f"time shift must be > 0, got {shift}")
    return shift * t / (1 + (shift - 1) * t)


def sample_timesteps(batch: int, frames: int, *, per: Literal["clip", "frame"] = "clip",
                     distribution: Literal["uniform", "logit_normal"] = "uniform", shift: float = 1.0,
                     logit_mean: float = 0.0, logit_std: float = 1.0, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """Training timesteps (B, F): one draw per clip (AAPT's default) or per frame, then shifted.

    `uniform` draws t ~ U(0, 1); `logit_normal` draws t = sigmoid(n), n ~ N(logit_mean, logit_std^2) (SD3).
    """
    if per not in ("clip", "frame"):
        raise ValueError(f"timesteps are drawn per 'clip' or per 'frame', got {per!r}")
    count = frames if per == "frame" else 1
    if distribution == "uniform":
        t = torch.rand(batch, count, generator=generator, device=device)
    elif distribution == "logit_normal":
        t = torch.sigmoid(logit_mean + logit_std * torch.randn(batch, count, generator=generator, device=device))
    else:
        raise ValueError(f"timestep distribution must be 'uniform' or 'logit_normal', got {distribution!r}")
    return shift_time(t, shift).expand(batch, frames)


def flow_matching_loss(v_pred: Tensor, x0: Tensor, noise: Tensor) -> Tensor:
    """Mean squared velocity error per frame: (B, F, C, H, W) -> (B, F), in float32."""
    err = (v_pred.float() - velocity_target(x0, noise).float()) ** 2
    return err.flatten(2).mean(-1)
