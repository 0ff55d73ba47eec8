"""`python -m lightning_aapt bench SUITE`: speed measured side by side in one run, printed as Markdown tables with
the command that reproduces them; `--out` writes the figures as JSON (keys such as `streaming.speedup_vs_no_cache`
are paths: `json["streaming"]["speedup_vs_no_cache"]`).

Suites: streaming, efficiency, training, data, projection, all. Untrained weights (speed does not depend on
them); warm-up excluded; GPU work synchronised before every clock read; threads and device in `machine`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from lightning_aapt.backbone import PRESETS, BackboneConfig
from lightning_aapt.cli.bench import data, efficiency, projection, streaming, training
from lightning_aapt.cli.bench.timing import machine

SUITES = ("streaming", "efficiency", "training", "data", "projection")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_aapt bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=[*SUITES, "all"])
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="backbone of the streaming (default toy) and efficiency (default bench) suites")
    parser.add_argument("--latent-size", type=int, nargs=2, metavar=("H", "W"),
                        help="latent frame size (default: 8 8 for toy, 32 32 otherwise)")
    parser.add_argument("--frames", type=int, default=1000, help="streamed frames for the cost curve")
    parser.add_argument("--window", type=int, default=30,
                        help="streaming suite: window frames (AAPT: 30; 0 keeps the preset's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", default="data/toy", help="toy shards for the data suite (made if missing)")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--quick", action="store_true", help="few steps and batches (tests); numbers are noisier")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    suites = SUITES if args.suite == "all" else (args.suite,)
    command = "python -m lightning_aapt bench " + " ".join(shlex.quote(a) for a in argv)
    results: dict = {"machine": machine(device), "command": command}
    print(f"# lightning_aapt bench: {', '.join(suites)}\n\n{results['machine']}; {dtype}\n\n`{command}`\n")

    def shape(default: str) -> tuple[str, BackboneConfig, tuple[int, int]]:
        name = args.preset or default
        size = tuple(args.latent_size) if args.latent_size else ((8, 8) if name == "toy" else (32, 32))
        return name, BackboneConfig.preset(name), size

    if "streaming" in suites:
        name, cfg, size = shape("toy")
        cfg = cfg.replace(window_frames=args.window) if args.window else cfg
        results["streaming"] = streaming.run(cfg, size, device, dtype, frames=args.frames)
        print("## streaming\n\n" + streaming.table(results["streaming"], name, size) + "\n")
    if "efficiency" in suites:
        name, cfg, size = shape("bench")
        results["efficiency"] = efficiency.run(cfg, size, device, dtype)
        print("## efficiency\n\n" + efficiency.table(results["efficiency"], name, size) + "\n")
    if "training" in suites:
        results["training"] = training.run(device, batch=2, steps=5) if args.quick else training.run(device)
        print("## training\n\n" + training.table(results["training"]) + "\n")
    if "data" in suites:
        consumed = results.get("training", {}).get("stage1_frames_per_second")
        per_clip = results.get("training", {}).get("frames", 8)
        results["data"] = data.run(args.data_dir, consumed / per_clip if consumed else None,
                                   batches=5 if args.quick else 40)
        print("## data\n\n" + data.table(results["data"]) + "\n")
    if "projection" in suites:
        mfu = results.get("efficiency", {}).get("mfu") if device.type == "cuda" else None
        results["projection"] = projection.run(mfu)
        print("## projection\n\n" + projection.table(results["projection"]) + "\n")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
