"""Patches, timestep features and rotary position embeddings (RoPE) of the video DiT.

Notation: B batch, F latent frames, C channels, H/W latent height/width, p patch size,
h/w = H/p, W/p patch grid, N = h*w tokens per frame, L tokens, nh heads, hd head dim.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def patchify(x: Tensor, p: int) -> Tensor:
    """(B, F, C, H, W) -> (B, F, N, C*p*p), features ordered (C, p, p) like a Conv2d(stride=p) weight."""
    B, F, C, H, W = x.shape
    x = x.reshape(B, F, C, H // p, p, W // p, p)  # (B, F, C, h, p, w, p)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)  # (B, F, h, w, C, p, p)
    return x.reshape(B, F, (H // p) * (W // p), C * p * p)  # (B, F, N, C*p*p)


def unpatchify(x: Tensor, p: int, height: int, width: int) -> Tensor:
    """Inverse of `patchify`: (B, F, N, C*p*p) -> (B, F, C, H, W)."""
    B, F, N, P = x.shape
    h, w, C = height // p, width // p, P // (p * p)
    x = x.reshape(B, F, h, w, C, p, p)  # (B, F, h, w, C, p, p)
    x = x.permute(0, 1, 4, 2, 5, 3, 6)  # (B, F, C, h, p, w, p)
    return x.reshape(B, F, C, height, width)  # (B, F, C, H, W)


def timestep_features(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of timesteps t in [0, 1] (scaled to [0, 1000] as in DiT/Wan): (...,) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[..., None] * freqs  # (..., dim/2)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (..., 2*(dim/2))
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


def rope_angles(positions: Tensor, channels: int, theta: float) -> Tensor:
    """Rotation angles for integer positions: (...,) -> (..., channels/2), float32."""
    freqs = theta ** (-torch.arange(0, channels, 2, dtype=torch.float32, device=positions.device) / channels)
    return positions.float()[..., None] * freqs


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs (x[2i], x[2i+1]) of x (..., c) by angles given as cos/sin (..., c/2), broadcasting.

    Pairs are interleaved, the convention of Wan's complex-number RoPE, so its weights load unchanged.
    """
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., c/2) each
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)  # (..., c)


def spatial_angles(grid_h: int, grid_w: int, split: tuple[int, int, int], theta: float,
                   device: torch.device) -> Tensor:
    """Angles of the height and width RoPE channels of each token of a frame: (N, (ch + cw)/2)."""
    _, ch, cw = split
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w)  # (N,)
    cols = torch.arange(grid_w, device=device).repeat(grid_h)  # (N,)
    return torch.cat([rope_angles(rows, ch, theta), rope_angles(cols, cw, theta)], dim=-1)  # (N, (ch+cw)/2)
