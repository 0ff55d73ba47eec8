"""`python -m lightning_aapt merge`: a LoRA stage checkpoint's adapters folded into its base weights, written as a
plain backbone checkpoint with how it samples (what `init_from`, `eval`, `sample`, `play` and any later stage read,
with no peft)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lightning_aapt.cli.signature import run_function


def merge(ckpt: Path, out: Path, weights: Literal["ema", "trained"] = "ema", overwrite: bool = False) -> int:
    """Write the plain backbone of a stage checkpoint, LoRA adapters merged (W + alpha/r * B A).

    Args:
        ckpt: a stage checkpoint (LoRA or not).
        out: the plain checkpoint to write (.ckpt): `backbone_config`, the merged weights and how it samples; no
            optimizer state.
        weights: "ema" (the averaged weights, when the stage kept an EMA) or "trained".
        overwrite: replace an existing --out (never --ckpt itself).
    """
    from lightning_aapt.checkpoints import load_generator, save_generator
    from lightning_aapt.files import check_output

    check_output(out, "--out", overwrite, ckpt=ckpt)
    generator = load_generator(ckpt, "--ckpt", prefer_ema=weights == "ema")
    model = generator.model
    out.parent.mkdir(parents=True, exist_ok=True)
    save_generator(generator, out, lora=None, merged_from=str(ckpt))
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters()):,} parameters ({generator.weights} weights of "
          f"{ckpt}, adapters merged)")
    return 0


def main(argv: list[str]) -> int:
    return run_function(merge, argv, "merge")
