"""Shared test helpers: tiny configs and models with every weight randomised.

A freshly built model outputs exactly zero (zero-initialised output layer), which would make every equality
test pass trivially, so tests draw all parameters at random.
"""

from __future__ import annotations

import torch

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT

LATENT = (4, 4)  # latent H, W of the tiny preset: 2x2 patches of size 2


def randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.15) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def tiny_model(seed: int = 0, attention_backend: str = "auto", **changes) -> CausalVideoDiT:
    return randomize(CausalVideoDiT(BackboneConfig.preset("tiny", **changes), attention_backend), seed)


def tiny_inputs(cfg: BackboneConfig, batch: int, frames: int, seed: int = 1) -> dict[str, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, frames, cfg.latent_channels, *LATENT)
    return {
        "latents": torch.randn(shape, generator=gen),
        "timesteps": torch.rand(batch, frames, generator=gen),
        "recycled": torch.randn(shape, generator=gen) if cfg.recycled_input else None,
        "text": torch.randn(batch, 5, cfg.text_dim, generator=gen),
        "controls": torch.randn(batch, frames, cfg.control_dim, generator=gen) if cfg.control_dim else None,
    }


def frames_slice(inputs: dict, start: int, stop: int) -> dict:
    """The inputs of frames start..stop-1 (text is per clip)."""
    return {k: (v if k == "text" or v is None else v[:, start:stop]) for k, v in inputs.items()}
