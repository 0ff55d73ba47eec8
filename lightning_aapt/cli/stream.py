"""`python -m lightning_aapt stream`: time the streaming generator of an untrained preset, frame by frame."""

from __future__ import annotations

import statistics
import sys
import time

import torch

from lightning_aapt.backbone import PRESETS, BackboneConfig, CausalVideoDiT
from lightning_aapt.cli.signature import run_function
from lightning_aapt.errors import ConfigError, check_at_least
from lightning_aapt.inference import StreamingGenerator


def stream(preset: str = "toy", frames: int = 240, steps: int = 1, batch: int = 1,
           latent_size: tuple[int, int] = (8, 8), warmup: int = 8, seed: int = 0) -> int:
    """Stream frames of an untrained preset through the KV cache and time each one.

    Args:
        preset: backbone preset (tiny, toy, bench, wan-1.3b-like, aapt-8b-like).
        frames: latent frames to generate.
        steps: network evaluations per frame (1 = AAPT).
        batch: streams generated together.
        latent_size: latent frame size [H,W].
        warmup: frames excluded from timing.
        seed: weights and noise seed.
    """
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: choose one of {sorted(PRESETS)}")
    check_at_least(("--frames", frames, 1), ("--steps", steps, 1), ("--batch", batch, 1), ("--warmup", warmup, 0))
    torch.manual_seed(seed)
    cfg = BackboneConfig.preset(preset)
    model = CausalVideoDiT(cfg).eval()
    gen = StreamingGenerator(model, latent_size=tuple(latent_size), steps=steps, seed=seed)
    text = torch.randn(batch, 16, cfg.text_dim)
    controls = torch.randn(batch, frames, cfg.control_dim) if cfg.control_dim else None
    gen.reset(text)
    times = []
    for f in range(frames):
        start = time.perf_counter()
        frame = gen.step(None if controls is None else controls[:, f])
        times.append(time.perf_counter() - start)
        if not torch.isfinite(frame).all():
            print(f"non-finite output at frame {f}", file=sys.stderr)
            return 1
    timed = times[warmup:] or times
    median_ms = 1e3 * statistics.median(timed)
    params = sum(p.numel() for p in model.parameters())
    print(f"preset {preset} ({params / 1e6:.1f}M parameters, untrained), latents {batch}x"
          f"{cfg.latent_channels}x{latent_size[0]}x{latent_size[1]}, window {cfg.window_frames}, "
          f"sink {cfg.sink_frames}, {steps} NFE/frame, {torch.get_num_threads()} threads")
    print(f"{frames} frames: median {median_ms:.2f} ms/frame ({1e3 / median_ms:.1f} latent frames/s, "
          f"decode not included, first {warmup} frames excluded); "
          f"cache {gen.cache.memory_bytes() / 2**20:.2f} MiB")
    return 0


def main(argv: list[str]) -> int:
    return run_function(stream, argv, "stream")
