"""The backbone contract of docs/architecture.md §3, exactly as written there."""

import dataclasses

import pytest
import torch

pytestmark = pytest.mark.unit


def test_design_contract_runs_as_written():
    from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT, KVCache

    cfg = BackboneConfig.preset("tiny")
    model = CausalVideoDiT(cfg)
    B, F, C, H, W, L = 2, 3, cfg.latent_channels, 4, 6, 7
    latents, recycled = torch.randn(B, F, C, H, W), torch.randn(B, F, C, H, W)
    timesteps, text = torch.rand(B, F), torch.randn(B, L, cfg.text_dim)
    v = model(latents, timesteps, recycled, text, controls=None, cache=None)
    assert v.shape == (B, F, C, H, W)
    # zero-initialised output layer: a fresh model predicts exactly zero velocity
    assert torch.count_nonzero(v) == 0

    cache = model.new_cache(B)
    assert isinstance(cache, KVCache) and cache.num_frames == 0
    model(latents[:, :2], timesteps[:, :2], recycled[:, :2], text, cache=cache)
    model(latents[:, 2:], timesteps[:, 2:], recycled[:, 2:], text, cache=cache)
    assert cache.num_frames == 3
    cache.set_prompt(text)  # then text=None: the prompt's keys/values are computed once and reused
    prompted = model(latents[:, :1], timesteps[:, :1], recycled[:, :1], None, cache=cache)
    assert prompted.shape == (B, 1, C, H, W) and cache.num_frames == 4

    windowed = dataclasses.replace(cfg, window_frames=4, sink_frames=1)
    assert CausalVideoDiT(windowed)(latents, timesteps, recycled, text).shape == (B, F, C, H, W)
    controlled = CausalVideoDiT(dataclasses.replace(cfg, control_dim=5))
    assert controlled(latents, timesteps, recycled, text, torch.randn(B, F, 5)).shape == (B, F, C, H, W)
    for field in ("latent_channels", "patch_size", "text_dim", "control_dim", "window_frames", "sink_frames",
                  "bidirectional"):
        assert hasattr(cfg, field)


def test_backbone_imports_torch_only():
    import subprocess
    import sys

    code = ("import sys, lightning_aapt.backbone, lightning_aapt.diffusion, lightning_aapt.inference; "
            "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'torchmetrics', 'torch.distributed.fsdp') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"the model code must import torch only, but it imported {out.strip()}"


def test_recycled_frames_put_the_frame_before_each_frame():
    from lightning_aapt.backbone import recycled_frames

    first, frames = torch.randn(2, 4, 3, 3), torch.randn(2, 5, 4, 3, 3)
    recycled = recycled_frames(first, frames)
    assert torch.equal(recycled[:, 0], first) and torch.equal(recycled[:, 1:], frames[:, :-1])
