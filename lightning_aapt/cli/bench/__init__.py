"""`python -m lightning_aapt bench SUITE`: speed measured side by side in one run, printed as Markdown tables with
the command that reproduces them; `--out` writes the figures as JSON (keys such as `streaming.speedup_vs_no_cache`
are paths: `json["streaming"]["speedup_vs_no_cache"]`).

Suites: streaming, efficiency, training, data, projection, all. Untrained weights (speed does not depend on
them); warm-up excluded; GPU work synchronised before every clock read; threads and device in `machine`.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Literal

import torch

from lightning_aapt.backbone import PRESETS, BackboneConfig
from lightning_aapt.cli.bench import data, efficiency, projection, streaming, training
from lightning_aapt.cli.bench.timing import machine
from lightning_aapt.cli.signature import run_function
from lightning_aapt.errors import ConfigError, check_at_least

SUITES = ("streaming", "efficiency", "training", "data", "projection")


Suite = Literal["streaming", "efficiency", "training", "data", "projection", "all"]


def bench(suite: Suite, preset: str | None = None, latent_size: tuple[int, int] | None = None, frames: int = 1000,
          window: int = 30, rounds: int = 30, batches: tuple[int, ...] = (1, 4, 16),
          methods: tuple[str, ...] | None = None, device: str | None = None,
          data_dir: Path = Path("data/toy"), out: Path | None = None, quick: bool = False, command: str = "") -> int:
    """Speed measured side by side in one run, printed as Markdown tables with the command that reproduces them.

    Args:
        suite: streaming, efficiency, training, data, projection, or all (given first, without a flag).
        preset: backbone of the streaming (default toy) and efficiency (default bench) suites.
        latent_size: latent frame size [H,W] (default: [8,8] for toy, [32,32] otherwise).
        frames: streamed frames for the cost curve.
        window: streaming suite: window frames (AAPT: 30; 0 keeps the preset's).
        rounds: streaming suite: interleaved rounds (a burst of every method per round) of steady-state samples.
        batches: streaming suite: stream counts of the 1-NFE generator decoded together (frames/s per device).
        methods: streaming suite: only these (of aapt, no_cache, four_steps, chunk_bidirectional, aapt_overlapped,
            aapt_graph, aapt_batch (every --batches count); default all that apply).
        device: cuda when there is one, else cpu.
        data_dir: toy shards for the data suite (made if missing).
        out: write the figures as JSON here.
        quick: few steps, batches and rounds, CPU memory read in-process (tests); numbers are noisier.
        command: the command line, recorded with the figures (set by `main`).
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: choose one of {sorted(PRESETS)}")
    if methods is not None and (unknown := set(methods) - set(streaming.METHODS)):
        raise ConfigError(f"--methods: {sorted(unknown)} unknown; choose from {list(streaming.METHODS)}")
    check_at_least(("--frames", frames, 1), ("--window", window, 0), ("--rounds", rounds, 1),
                   *[("--batches", b, 1) for b in batches], *[("--latent_size", s, 1) for s in latent_size or ()],
                   why={"--window": " (0 keeps the preset's)"})
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    suites = SUITES if suite == "all" else (suite,)
    results: dict = {"machine": machine(device), "command": command}
    print(f"# lightning_aapt bench: {', '.join(suites)}\n\n{results['machine']}; {dtype}\n\n`{command}`\n")

    def shape(default: str) -> tuple[str, BackboneConfig, tuple[int, int]]:
        name = preset or default
        size = tuple(latent_size) if latent_size else ((8, 8) if name == "toy" else (32, 32))
        return name, BackboneConfig.preset(name), size

    if "streaming" in suites:
        name, cfg, size = shape("toy")
        cfg = cfg.replace(window_frames=window) if window else cfg
        results["streaming"] = streaming.run(cfg, size, device, dtype, frames=frames, rounds=4 if quick else rounds,
                                             starts=2 if quick else 5, batches=tuple(batches),
                                             only=None if methods is None else tuple(methods),
                                             fresh_processes=not quick)
        print("## streaming\n\n" + streaming.table(results["streaming"], name, size) + "\n")
    if "efficiency" in suites:
        name, cfg, size = shape("bench")
        results["efficiency"] = efficiency.run(cfg, size, device, dtype)
        print("## efficiency\n\n" + efficiency.table(results["efficiency"], name, size) + "\n")
    if "training" in suites:
        results["training"] = training.run(device, batch=2, steps=5) if quick else training.run(device)
        print("## training\n\n" + training.table(results["training"]) + "\n")
    if "data" in suites:
        consumed = results.get("training", {}).get("stage1_frames_per_second")
        per_clip = results.get("training", {}).get("frames", 8)
        results["data"] = data.run(str(data_dir), consumed / per_clip if consumed else None,
                                   batches=5 if quick else 40)
        print("## data\n\n" + data.table(results["data"]) + "\n")
    if "projection" in suites:
        mfu = results.get("efficiency", {}).get("mfu") if device.type == "cuda" else None
        results["projection"] = projection.run(mfu)
        print("## projection\n\n" + projection.table(results["projection"]) + "\n")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"wrote {out}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    """`bench SUITE [--flag value ...]`: the suite first, then `bench`'s flags."""
    command = "python -m lightning_aapt bench " + " ".join(shlex.quote(a) for a in argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--suite", argv[0], *argv[1:]]
    return run_function(bench, [*argv, "--command", command], "bench")
