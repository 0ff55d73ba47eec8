"""`LatentCodec`: what a video autoencoder must offer to the framework (the toy codec and real VAEs alike).

Videos are (B, T, 3, H, W) float in [0, 1]; latents (B, F, C, H/s, W/s) with F = T / temporal_factor.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class LatentCodec(Protocol):
    name: str
    latent_channels: int
    spatial_factor: int
    temporal_factor: int

    def encode(self, video: Tensor) -> Tensor:
        """(B, T, 3, H, W) in [0, 1] -> (B, F, C, H/s, W/s)."""
        ...

    def decode(self, latents: Tensor) -> Tensor:
        """(B, F, C, h, w) -> (B, F*temporal_factor, 3, h*s, w*s) in [0, 1]."""
        ...
