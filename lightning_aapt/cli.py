"""`python -m lightning_aapt COMMAND`: the composition root, where core, data and callbacks meet.

Commands:
    fit | validate | test | predict   LightningCLI (parser_mode="omegaconf"): --config X.yaml, --print_config
    prepare toy-world --out DIR       render the toy world into WebDataset shards + manifest.json
    stream                            time the streaming generator, frame by frame
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from lightning_aapt.backbone import PRESETS, BackboneConfig, CausalVideoDiT
from lightning_aapt.inference import StreamingGenerator

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def lightning_cli(argv: list[str] | None) -> int:
    """LightningCLI on `argv` (None: the command line itself)."""
    from lightning.pytorch.cli import LightningCLI

    from datamodules.web_video import WebVideoDataModule
    from lightning_aapt.stages import StageModule

    class AAPTCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # The data decides latent channels, text width and control width; the model gets them from it.
            parser.link_arguments("data.model_dims", "model.init_args.model_dims", apply_on="instantiate")

    AAPTCLI(StageModule, WebVideoDataModule, subclass_mode_model=True, subclass_mode_data=True,
            parser_kwargs={"parser_mode": "omegaconf"}, save_config_kwargs={"overwrite": True}, args=argv)
    return 0


def prepare(argv: list[str]) -> int:
    from datamodules.toy_world import ToyWorldSpec, prepare_toy_world
    from lightning_aapt.world import WorldConfig

    parser = argparse.ArgumentParser(prog="python -m lightning_aapt prepare",
                                     description="Write WebDataset shards of video latents.")
    sub = parser.add_subparsers(dest="source", required=True)
    toy = sub.add_parser("toy-world", help="render the built-in toy world (deterministic from --seed)")
    spec = ToyWorldSpec()
    toy.add_argument("--out", type=Path, required=True, help="output directory")
    toy.add_argument("--train-clips", type=int, default=spec.train_clips)
    toy.add_argument("--val-clips", type=int, default=spec.val_clips)
    toy.add_argument("--clip-frames", type=int, default=spec.clip_frames)
    toy.add_argument("--size", type=int, default=WorldConfig().size, help="frame edge in pixels")
    toy.add_argument("--samples-per-shard", type=int, default=spec.samples_per_shard)
    toy.add_argument("--seed", type=int, default=spec.seed)
    toy.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    args = parser.parse_args(argv)
    spec = ToyWorldSpec(train_clips=args.train_clips, val_clips=args.val_clips, clip_frames=args.clip_frames,
                        world=WorldConfig(size=args.size), samples_per_shard=args.samples_per_shard, seed=args.seed)
    manifest = prepare_toy_world(args.out, spec, overwrite=args.overwrite)
    print(f"wrote {args.train_clips} train and {args.val_clips} val clips to {args.out} "
          f"(latents {manifest['shapes']['latents']}, {manifest['made_by']['seconds']} s)")
    return 0


def stream(argv: list[str]) -> int:
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


COMMANDS = {"prepare": prepare, "stream": stream}


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_COMMANDS:
        return lightning_cli(None if from_command_line else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    print(__doc__)
    return 0 if not argv or argv[0] in ("-h", "--help") else 2
