"""`WanVAECodec`: Wan's causal video VAE (2.1: 16 channels, 8x spatial; 2.2: 48 channels, 16x) as a `LatentCodec`.

Notation: B batch, T video frames, F = 1 + (T - 1) / 4 latent frames, z latent channels, H/W pixels,
h/w = H/s, W/s latent height/width.

Runs diffusers' `AutoencoderKLWan` (the `[wan]` extra) from a local path: a diffusers folder (`vae/` of a Wan
pipeline, or the pipeline folder itself), or Wan's own `Wan2.1_VAE.pth` through diffusers' single-file converter
and Wan 2.1's published config. The VAE is causal in time: video frame 0 is encoded alone (latent 0 is an image
latent, AAPT's first frame) and every later latent covers 4 frames; encode takes 1 + 4k frames. Latents are
normalised with the VAE's own per-channel mean/std, z' = (z - mean) / std, the latents Wan's transformers were
trained on; a dataset written with this codec records identity `latent_stats`. Encoding uses the posterior mode.

`stream_decoder()` decodes a generated stream one latent frame at a time, keeping the causal convolutions' cache
between frames (the last two frames of every causal conv: memory is constant): latent 0 gives 1 video frame, every
later one 4, and the frames equal a whole-sequence decode.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from lightning_aapt.codecs.base import latent_frames
from lightning_aapt.codecs.normalized import LatentStats

# Wan 2.1's VAE (diffusers' AutoencoderKLWan defaults), for an original Wan2.1_VAE.pth that comes without one.
WAN21_VAE_CONFIG = {
    "_class_name": "AutoencoderKLWan", "base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
    "attn_scales": [], "temperal_downsample": [False, True, True], "dropout": 0.0,
    "latents_mean": [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                     0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
    "latents_std": [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160],
}


def load_wan_vae(path: str | Path, dtype: torch.dtype = torch.float32, config: dict | None = None):
    """diffusers' `AutoencoderKLWan` in `dtype` from a local folder or an original single file (`config`: its
    diffusers config, default Wan 2.1's), offline."""
    from diffusers import AutoencoderKLWan

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such Wan VAE (a diffusers folder, or Wan2.1_VAE.pth)")
    if path.is_dir():
        if not (path / "config.json").is_file() and (path / "vae" / "config.json").is_file():
            path = path / "vae"  # a whole diffusers pipeline
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json; expected a diffusers AutoencoderKLWan folder")
        return AutoencoderKLWan.from_pretrained(path, torch_dtype=dtype, local_files_only=True)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.json").write_text(json.dumps(config or WAN21_VAE_CONFIG))
        try:
            return AutoencoderKLWan.from_single_file(str(path), config=folder, torch_dtype=dtype,
                                                     local_files_only=True)
        except Exception as err:
            raise ValueError(f"{path}: not a Wan 2.1 VAE in Wan's own layout ({type(err).__name__}: {err}); a Wan "
                             "2.2 VAE loads from its diffusers folder (vae/ of Wan2.2-TI2V-5B-Diffusers)") from err


class WanVAECodec:
    """Wan's VAE behind `LatentCodec` (see the module docstring).

    Args:
        path: the VAE: a diffusers folder (or pipeline folder), or an original Wan2.1_VAE.pth.
        dtype, device: where the VAE runs (float32 on the CPU by default; bfloat16 on a GPU).
        name: the codec's name in a dataset's manifest (default: wan2.1-vae / wan2.2-vae by its shape).
    """

    first_frame_alone = True

    def __init__(self, path: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                 name: str | None = None) -> None:
        self.path = Path(path)
        self.vae = load_wan_vae(path, dtype).to(device).eval().requires_grad_(False)
        cfg = self.vae.config
        self.latent_channels = int(cfg.z_dim)
        self.spatial_factor = int(cfg.scale_factor_spatial)
        self.temporal_factor = int(cfg.scale_factor_temporal)
        self.name = name or ("wan2.2-vae" if cfg.is_residual else "wan2.1-vae")
        if len(cfg.latents_mean) != self.latent_channels or len(cfg.latents_std) != self.latent_channels:
            raise ValueError(f"{path}: latents_mean/std list {len(cfg.latents_mean)}/{len(cfg.latents_std)} values "
                             f"for {self.latent_channels} latent channels")
        self.stats = LatentStats(tuple(cfg.latents_mean), tuple(cfg.latents_std))  # the VAE's own

    def normalize(self, z: Tensor) -> Tensor:
        """Raw VAE latents (B, z, ...) -> the transformer's (B, z, ...)."""
        return self.stats.normalize(z.float(), channel_axis=1)

    def denormalize(self, latents: Tensor) -> Tensor:
        return self.stats.denormalize(latents.float(), channel_axis=1)

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """(B, T, 3, H, W) in [0, 1], T = 1 + 4k -> normalised latents (B, 1 + k, z, H/s, W/s)."""
        B, T, _, H, W = video.shape
        latent_frames(self, T)  # checks T
        if H % self.spatial_factor or W % self.spatial_factor:
            raise ValueError(f"codec {self.name} needs frame height/width divisible by {self.spatial_factor}; got "
                             f"{H}x{W}")
        param = next(self.vae.parameters())
        x = (video.to(param) * 2 - 1).transpose(1, 2)  # (B, 3, T, H, W) in [-1, 1]
        z = self.vae.encode(x).latent_dist.mode()  # (B, z, F, h, w)
        return self.normalize(z).transpose(1, 2).contiguous()  # (B, F, z, h, w)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents (B, F, z, h, w) -> (B, 1 + 4(F - 1), 3, H, W) in [0, 1]."""
        param = next(self.vae.parameters())
        z = self.denormalize(latents.transpose(1, 2)).to(param)  # (B, z, F, h, w)
        x = self.vae.decode(z).sample  # (B, 3, T, H, W) in [-1, 1]
        return ((x.float() + 1) / 2).clamp(0, 1).transpose(1, 2)  # (B, T, 3, H, W)

    def stream_decoder(self) -> WanStreamDecoder:
        return WanStreamDecoder(self)


class WanStreamDecoder:
    """Decodes one stream frame by frame with the VAE decoder's causal-convolution cache (see the module docstring).
    Uses `AutoencoderKLWan`'s decoder the way its own `_decode` loop does, one latent frame per call."""

    def __init__(self, codec: WanVAECodec) -> None:
        self.codec = codec
        self.reset()

    def reset(self) -> None:
        self.cache = [None] * self.codec.vae._cached_conv_counts["decoder"]
        self.first = True

    @torch.no_grad()
    def step(self, latent: Tensor) -> Tensor:
        """One normalised latent frame (B, z, h, w) -> (B, t, 3, H, W) in [0, 1]: t = 1 first, then 4."""
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        vae = self.codec.vae
        param = next(vae.parameters())
        z = self.codec.denormalize(latent[:, :, None]).to(param)  # (B, z, 1, h, w)
        out = vae.decoder(vae.post_quant_conv(z), feat_cache=self.cache, feat_idx=[0], first_chunk=self.first)
        self.first = False
        if vae.config.patch_size is not None:
            out = unpatchify(out, patch_size=vae.config.patch_size)
        return ((out.float().clamp(-1, 1) + 1) / 2).transpose(1, 2)  # (B, t, 3, H, W)
