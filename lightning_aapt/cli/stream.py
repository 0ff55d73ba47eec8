"""`python -m lightning_aapt stream`: time the streaming generator of an untrained preset, frame by frame."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from lightning_aapt.backbone import PRESETS, BackboneConfig, CausalVideoDiT
from lightning_aapt.inference import StreamingGenerator


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_aapt stream",
                                     description="Stream frames through the KV cache and time each one.")
    parser.add_argument("--preset", default="toy", choices=sorted(PRESETS), help="backbone preset")
    parser.add_argument("--frames", type=int, default=240, help="latent frames to generate")
    parser.add_argument("--steps", type=int, default=1, help="network evaluations per frame (1 = AAPT)")
    parser.add_argument("--batch", type=int, default=1, help="streams generated together")
    parser.add_argument("--latent-size", type=int, nargs=2, default=(8, 8), metavar=("H", "W"))
    parser.add_argument("--warmup", type=int, default=8, help="frames excluded from timing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    cfg = BackboneConfig.preset(args.preset)
    model = CausalVideoDiT(cfg).eval()
    gen = StreamingGenerator(model, latent_size=tuple(args.latent_size), steps=args.steps, seed=args.seed)
    text = torch.randn(args.batch, 16, cfg.text_dim)
    controls = torch.randn(args.batch, args.frames, cfg.control_dim) if cfg.control_dim else None
    gen.reset(text)
    times = []
    for f in range(args.frames):
        start = time.perf_counter()
        frame = gen.step(None if controls is None else controls[:, f])
        times.append(time.perf_counter() - start)
        if not torch.isfinite(frame).all():
            print(f"non-finite output at frame {f}", file=sys.stderr)
            return 1
    timed = times[args.warmup:] or times
    median_ms = 1e3 * statistics.median(timed)
    params = sum(p.numel() for p in model.parameters())
    print(f"preset {args.preset} ({params / 1e6:.1f}M parameters, untrained), latents {args.batch}x"
          f"{cfg.latent_channels}x{args.latent_size[0]}x{args.latent_size[1]}, window {cfg.window_frames}, "
          f"sink {cfg.sink_frames}, {args.steps} NFE/frame, {torch.get_num_threads()} threads")
    print(f"{args.frames} frames: median {median_ms:.2f} ms/frame ({1e3 / median_ms:.1f} latent frames/s, "
          f"decode not included, first {args.warmup} frames excluded); "
          f"cache {gen.cache.memory_bytes() / 2**20:.2f} MiB")
    return 0
