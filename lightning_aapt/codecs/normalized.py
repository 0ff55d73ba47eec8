"""Per-channel latent normalisation: the statistics a dataset records, and a codec that applies them.

Notation: B batch, F frames, C latent channels, h/w latent height/width.

The flow schedule assumes unit-scale latents (at t = 1 the input is unit noise), but codecs do not make them:
the toy codec's DC channels sit near -1.1 with std 0.5 and its AC channels have std 0.12-0.5; real VAEs ship a
per-channel latent mean/std (Wan) or one scaling factor (Stable Diffusion). `prepare` measures the mean and std
of every channel over the training latents and records them in the manifest (`latent_stats`); the data module
serves (raw - mean) / std, and `NormalizedCodec` maps between pixels and those normalised latents, so every
model, metric and video sees one convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightning_aapt.codecs.base import LatentCodec


@dataclass(frozen=True)
class LatentStats:
    """Per-channel mean and std of a dataset's raw latents (as stored in its shards)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"latent_stats: mean and std must list one value per channel; got {len(self.mean)} "
                             f"and {len(self.std)}")
        if not all(s > 0 and np.isfinite(s) for s in self.std) or not all(np.isfinite(m) for m in self.mean):
            raise ValueError("latent_stats: every std must be positive and finite, every mean finite")

    @classmethod
    def identity(cls, channels: int) -> LatentStats:
        return cls((0.0,) * channels, (1.0,) * channels)

    @classmethod
    def from_dict(cls, record: dict) -> LatentStats:
        return cls(tuple(record["mean"]), tuple(record["std"]))

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @property
    def channels(self) -> int:
        return len(self.mean)

    def _shaped(self, like: Tensor | np.ndarray, channel_axis: int):
        shape = [1] * np.ndim(like)
        shape[channel_axis] = self.channels
        if isinstance(like, Tensor):
            mean = torch.tensor(self.mean, dtype=torch.float32, device=like.device).view(shape)
            return mean, torch.tensor(self.std, dtype=torch.float32, device=like.device).view(shape)
        return (np.asarray(self.mean, dtype=np.float32).reshape(shape),
                np.asarray(self.std, dtype=np.float32).reshape(shape))

    def normalize(self, raw, channel_axis: int = -3):
        """(raw - mean) / std with channels on `channel_axis` (default: (..., C, h, w))."""
        mean, std = self._shaped(raw, channel_axis)
        return (raw - mean) / std

    def denormalize(self, latents, channel_axis: int = -3):
        """normalised * std + mean: the raw latents the codec decodes."""
        mean, std = self._shaped(latents, channel_axis)
        return latents * std + mean


class NormalizedCodec:
    """A codec whose latents are normalised per channel: encode = normalise(codec.encode), decode inverts it.

    Args:
        codec: the raw codec (toy DCT, a VAE adapter).
        stats: per-channel statistics of its raw latents, from the dataset's manifest.
    """

    def __init__(self, codec: LatentCodec, stats: LatentStats) -> None:
        if stats.channels != codec.latent_channels:
            raise ValueError(f"latent_stats has {stats.channels} channels but codec {codec.name} makes "
                             f"{codec.latent_channels}")
        self.codec, self.stats = codec, stats
        self.name, self.latent_channels = codec.name, codec.latent_channels
        self.spatial_factor, self.temporal_factor = codec.spatial_factor, codec.temporal_factor
        self.first_frame_alone = codec.first_frame_alone

    def encode(self, video: Tensor) -> Tensor:
        """(B, T, 3, H, W) in [0, 1] -> normalised latents (B, F, C, h, w)."""
        return self.stats.normalize(self.codec.encode(video))

    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents (B, F, C, h, w) -> (B, T, 3, H, W) in [0, 1]."""
        return self.codec.decode(self.stats.denormalize(latents.float()))

    def stream_decoder(self) -> _NormalizedStream:
        return _NormalizedStream(self.codec.stream_decoder(), self.stats)


class _NormalizedStream:
    """A stream decoder of normalised latents: denormalise each frame, then the codec's own stream decoder."""

    def __init__(self, inner, stats: LatentStats) -> None:
        self.inner, self.stats = inner, stats

    def step(self, latent: Tensor) -> Tensor:
        return self.inner.step(self.stats.denormalize(latent.float()))

    def reset(self) -> None:
        self.inner.reset()
