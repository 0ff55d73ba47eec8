"""`ToyCodec`: an exactly invertible latent codec that needs no training (block DCT).

Each b x b block of each colour channel becomes its b*b orthonormal DCT-II coefficients, so a frame of
(3, H, W) maps to (3*b*b, H/b, W/b) latents and back without loss (up to float rounding). Channel order is
(colour, u, v). Pixels are mapped to [-1, 1] first and the DC coefficients scaled by 2/b, so DC channels lie
in [-2, 2] and the others within [-b, b] (small on smooth regions). Stored as float16, latents decode back to
the same 8-bit frames. Temporal factor 1: one latent frame per video frame.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_aapt.codecs.base import FrameDecoder


def dct_matrix(n: int) -> Tensor:
    """Orthonormal DCT-II matrix (n, n): row k is the k-th basis vector."""
    i = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (i[None, :] + 0.5) * i[:, None] / n) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


class ToyCodec:
    """Block-DCT codec: (B, T, 3, H, W) in [0, 1] <-> (B, T, 3*b*b, H/b, W/b).

    Args:
        block: b, the spatial factor.
    """

    temporal_factor = 1
    first_frame_alone = False

    def __init__(self, block: int = 4) -> None:
        if block < 1:
            raise ValueError(f"ToyCodec block must be >= 1, got {block}")
        self.block = block
        self.spatial_factor = block
        self.latent_channels = 3 * block * block
        self.name = f"toy-dct{block}"
        scale = torch.ones(3, block, block, dtype=torch.float64)
        scale[:, 0, 0] = 2.0 / block
        self._dct = dct_matrix(block)
        self._scale = scale

    def encode(self, video: Tensor) -> Tensor:
        B, T, _, H, W = video.shape
        b = self.block
        if H % b or W % b:
            raise ValueError(f"ToyCodec(block={b}) needs frame height/width divisible by {b}; got {H}x{W}")
        d, scale = self._dct.to(video.device, torch.float32), self._scale.to(video.device, torch.float32)
        x = (video.float() * 2 - 1).reshape(B, T, 3, H // b, b, W // b, b)  # (B, T, 3, h, b, w, b)
        coeff = torch.einsum("ui,btchiwj,vj->btcuvhw", d, x, d)  # (B, T, 3, b, b, h, w)
        coeff = coeff * scale[:, :, :, None, None]
        return coeff.reshape(B, T, 3 * b * b, H // b, W // b)  # (B, T, C, h, w)

    def decode(self, latents: Tensor) -> Tensor:
        B, F, C, h, w = latents.shape
        b = self.block
        if self.latent_channels != C:
            raise ValueError(f"ToyCodec(block={b}) decodes {self.latent_channels}-channel latents; got {C}")
        d, scale = self._dct.to(latents.device, torch.float32), self._scale.to(latents.device, torch.float32)
        coeff = latents.float().reshape(B, F, 3, b, b, h, w) / scale[:, :, :, None, None]  # (B, F, 3, b, b, h, w)
        x = torch.einsum("ui,btcuvhw,vj->btchiwj", d, coeff, d)  # (B, F, 3, h, b, w, b)
        return ((x.reshape(B, F, 3, h * b, w * b) + 1) / 2).clamp(0, 1)  # (B, F, 3, H, W)

    def stream_decoder(self) -> FrameDecoder:
        return FrameDecoder(self)
