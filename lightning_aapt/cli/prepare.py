"""`python -m lightning_aapt prepare`: write WebDataset shards of video latents."""

from __future__ import annotations

from pathlib import Path

from lightning_aapt.cli.signature import run_function
from lightning_aapt.world.dataset import ToyWorldSpec


def toy_world(out: Path, spec: ToyWorldSpec | None = None, overwrite: bool = False) -> int:
    """Render the built-in toy world into shards and a manifest, deterministic from the spec's seed.

    Args:
        out: output directory.
        spec: what to render (default: the default world, 1000 train and 64 val clips of 16 frames, 32 px); any
            field can be set, e.g. --spec.train_clips 200 --spec.world.size 16 (`--spec.help` lists them), or
            the same block as a data config's toy_world.
        overwrite: replace an existing dataset (--overwrite true).
    """
    from datamodules.toy_world import prepare_toy_world

    spec = spec or ToyWorldSpec()
    manifest = prepare_toy_world(out, spec, overwrite=overwrite)
    print(f"wrote {spec.train_clips} train and {spec.val_clips} val clips to {out} "
          f"(latents {manifest['shapes']['latents']}, {manifest['made_by']['seconds']} s)")
    return 0


SOURCES = {"toy-world": toy_world}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SOURCES:
        print(f"usage: python -m lightning_aapt prepare {{{','.join(SOURCES)}}} [--help]: write shards of "
              "(for now) the built-in toy world")
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    return run_function(SOURCES[argv[0]], argv[1:], f"prepare {argv[0]}")
