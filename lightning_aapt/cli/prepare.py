"""`python -m lightning_aapt prepare`: write WebDataset shards of video latents."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str]) -> int:
    from datamodules.toy_world import prepare_toy_world
    from lightning_aapt.world import WorldConfig
    from lightning_aapt.world.dataset import ToyWorldSpec

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
