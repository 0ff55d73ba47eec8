"""`LearnedCodec`: a tiny convolutional autoencoder as the world's latent codec, as a real pipeline has a VAE.

Notation: B batch, T frames, C latent channels, S pixel size, s = spatial factor (a power of 2), h = S / s.

A fixed block transform (the toy DCT) shows every latent error as-is: a stream's per-token drift becomes 4x4
blocks. A learned decoder maps latents to what the world's frames look like, and its 3x3 convolutions span token
borders. The codec is trained once on the world's frames (`train_codec`), frozen, saved with its settings, and
named in the dataset's manifest with the file's SHA-256 (a different file is refused).

Encoder: a 3x3 conv to `width`, then log2(s) stride-2 4x4 convs (doubling the width up to `max_width`), each with
a residual 3x3 block, and a 1x1 conv to C. Decoder: the mirror, nearest-neighbour upsampling then 3x3 convs. Frames
are coded one by one (no time axis: `temporal_factor` 1). Training: pixel MSE weighted towards the world's bodies
(`body_weight`: a sprite is a few percent of a frame but all of what a person reads in it) plus noise on the
latents before decoding (`latent_noise`, in units of the latents' std), so that the decoder maps a slightly wrong
latent, as a generator makes, to a clean frame rather than to texture.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lightning_aapt.codecs.base import FrameDecoder
from lightning_aapt.errors import DataError
from lightning_aapt.files import atomic_path, file_sha256


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of the autoencoder.

    Args:
        spatial_factor: s, pixels per latent position along each axis (a power of 2).
        latent_channels: C.
        width: channels of the full-resolution layer; each downsampling doubles it up to `max_width`.
        max_width: the widest layer.
    """

    spatial_factor: int = 8
    latent_channels: int = 16
    width: int = 16
    max_width: int = 64

    def __post_init__(self) -> None:
        s = self.spatial_factor
        if s < 1 or s & (s - 1):
            raise ValueError(f"codec spatial_factor must be a power of 2, got {s}")
        if self.latent_channels < 1 or self.width < 1 or self.max_width < self.width:
            raise ValueError(f"codec needs latent_channels >= 1 and 1 <= width <= max_width; got {self}")

    def widths(self) -> list[int]:
        """Channels at each resolution, full resolution first: log2(s) + 1 entries."""
        return [min(self.width * 2**i, self.max_width) for i in range(int(math.log2(self.spatial_factor)) + 1)]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.GELU(), nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Autoencoder(nn.Module):
    """Frames (N, 3, S, S) in [0, 1] <-> latents (N, C, S/s, S/s)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.widths()
        down: list[nn.Module] = [nn.Conv2d(3, w[0], 3, padding=1)]
        for a, b in itertools.pairwise(w):
            down += [nn.GELU(), nn.Conv2d(a, b, 4, stride=2, padding=1), ResidualBlock(b)]
        down += [nn.GELU(), nn.Conv2d(w[-1], cfg.latent_channels, 1)]
        self.encoder = nn.Sequential(*down)
        up: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, w[-1], 3, padding=1), ResidualBlock(w[-1])]
        for a, b in itertools.pairwise(w[::-1]):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1), ResidualBlock(b)]
        up += [nn.GELU(), nn.Conv2d(w[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*up)

    def encode(self, frames: Tensor) -> Tensor:
        return self.encoder(frames * 2 - 1)  # (N, C, h, w)

    def decode(self, latents: Tensor) -> Tensor:
        return (self.decoder(latents) + 1) / 2  # (N, 3, S, S), not clamped


class LearnedCodec:
    """The `LatentCodec` of a trained `Autoencoder` saved by `save_codec` (frames coded one by one).

    Args:
        path: the codec file.
        sha256: when given, the file must have this SHA-256 (the one a manifest recorded).
    """

    name = "learned-ae"  # what a manifest records as codec.name
    temporal_factor = 1
    first_frame_alone = False

    def __init__(self, path: str | Path, sha256: str | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"codec file {path} does not exist: train it with `python -m lightning_aapt prepare "
                            "codec --out PATH` (the same world as the dataset's)")
        digest = file_sha256(path)
        if sha256 is not None and digest != sha256:
            raise DataError(f"codec file {path} has SHA-256 {digest[:12]}..., but the dataset was encoded with "
                            f"{sha256[:12]}...: a different codec; re-render the dataset or restore the file")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        self.model = Autoencoder(AutoencoderConfig(**saved["config"])).eval().requires_grad_(False)
        self.model.load_state_dict(saved["state_dict"])
        self.path, self.sha256, self.training = str(path), digest, saved.get("training", {})
        self.latent_channels = self.model.cfg.latent_channels
        self.spatial_factor = self.model.cfg.spatial_factor

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """(B, T, 3, S, S) in [0, 1] -> (B, T, C, S/s, S/s)."""
        B, T = video.shape[:2]
        s = self.spatial_factor
        if video.shape[-1] % s or video.shape[-2] % s:
            raise ValueError(f"codec {self.path} (spatial factor {s}) needs frame sides divisible by {s}; got "
                             f"{tuple(video.shape[-2:])}")
        return self.model.encode(video.flatten(0, 1).float()).unflatten(0, (B, T))

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """(B, T, C, h, w) -> (B, T, 3, h*s, w*s) in [0, 1]."""
        B, T = latents.shape[:2]
        if latents.shape[2] != self.latent_channels:
            raise ValueError(f"codec {self.path} decodes {self.latent_channels}-channel latents; got "
                             f"{latents.shape[2]}")
        return self.model.decode(latents.flatten(0, 1).float()).unflatten(0, (B, T)).clamp(0, 1)

    def stream_decoder(self) -> FrameDecoder:
        return FrameDecoder(self)


def save_codec(model: Autoencoder, path: str | Path, training: dict) -> None:
    """Write the codec file (config, weights, how it was trained) atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"config": asdict(model.cfg), "state_dict": model.state_dict(), "training": training}, tmp)


@dataclass(frozen=True)
class CodecTraining:
    """How `train_codec` trains.

    Args:
        steps: optimizer steps.
        batch_size: frames per step.
        lr: AdamW learning rate (cosine to a tenth over the steps).
        body_weight: extra pixel-loss weight where a body (sprite or agent) covers the pixel.
        latent_noise: std of the noise added to the latents before decoding, relative to their std.
        seed: initialisation and batch order.
    """

    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    body_weight: float = 4.0
    latent_noise: float = 0.1
    seed: int = 0


def train_codec(frames: Tensor, bodies: Tensor, cfg: AutoencoderConfig, training: CodecTraining,
                log=None) -> Autoencoder:
    """An `Autoencoder` trained on frames (N, 3, S, S) in [0, 1] with body coverage (N, 1, S, S) in [0, 1]."""
    torch.manual_seed(training.seed)
    model = Autoencoder(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(i / max(training.steps, 1), 1.0))))
    order = torch.Generator().manual_seed(training.seed)
    for step in range(training.steps):
        pick = torch.randint(len(frames), (training.batch_size,), generator=order)
        x, weight = frames[pick], 1 + training.body_weight * bodies[pick]  # (b, 3, S, S), (b, 1, S, S)
        z = model.encode(x)
        if training.latent_noise:
            z = z + training.latent_noise * z.detach().std() * torch.randn_like(z)
        loss = ((model.decode(z) - x).pow(2) * weight).mean() / weight.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if log is not None and (step % 200 == 0 or step == training.steps - 1):
            log(step, loss.item())
    return model.eval()
