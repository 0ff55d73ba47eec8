"""The command line: `python -m lightning_aapt COMMAND`, each command a module of this package (imported on use);
the one place where the core, the data modules and the callbacks meet, and where a refusal becomes one `error:`
line and exit status 2 (`run`)."""

from __future__ import annotations

import errno
import importlib
import sys

from lightning_aapt.cli.lightning import LIGHTNING_COMMANDS, lightning_cli

USAGE = """lightning_aapt: a pretrained video diffusion transformer made into a real-time, interactive,
autoregressive video generator by AAPT (autoregressive adversarial post-training), on a toy world you can play.

usage: python -m lightning_aapt COMMAND [--help]      (--version: the installed version)

Train
    pipeline --config PIPELINE.yaml   AAPT's stages in order, each from the one before (resumable), then a report
    fit | validate | test | predict   one stage: LightningCLI on its YAML (--config X.yaml, --print_config)
    sweep --config X --grid K=[a,b]   trials of overrides: --local true here, or a SLURM job array (--submit true)
    sweep summary --dir DIR           every trial's final metrics -> DIR/summary.md, summary.csv
Use a trained generator
    play --ckpt CKPT                  steer the generated world live in the browser, the truth beside it
    sample --ckpt CKPT --out FILE     one long stream next to the toy world's truth, as a GIF or MP4
    eval --ckpt CKPT --config X.yaml  generated-vs-real distances and long-horizon drift of a checkpoint: a report
    merge --ckpt CKPT --out FILE      a LoRA stage checkpoint's adapters merged into a plain backbone checkpoint
Data
    prepare toy-world --out DIR       render the toy world into WebDataset shards + manifest.json
    prepare videos --out DIR ...      encode a folder of videos (Wan VAE, umT5) into shards + manifest.json
Measure and plan
    plan --config X.yaml              parameters, FLOPs and memory per GPU of a config, before launching
    bench SUITE                       speed side by side: streaming | efficiency | training | data | projection | all
    stream                            time an untrained preset's streaming, frame by frame
"""

# command -> module of lightning_aapt.cli whose main(argv) runs it (imported on use: `--help` stays fast)
COMMANDS = {"bench": "bench", "eval": "evaluate", "merge": "merge", "pipeline": "pipeline", "plan": "plan",
            "play": "play", "prepare": "prepare", "sample": "sample", "stream": "stream", "sweep": "sweep"}


def main(argv: list[str] | None = None) -> int:
    """Run the command `argv` (None: the command line); a refusal propagates (see `run`)."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in LIGHTNING_COMMANDS:
        return lightning_cli(None if from_command_line else argv)
    if argv and argv[0] in COMMANDS:
        return importlib.import_module(f"lightning_aapt.cli.{COMMANDS[argv[0]]}").main(argv[1:])
    if argv and argv[0] == "--version":
        from lightning_aapt import __version__

        print(f"lightning_aapt {__version__}")
        return 0
    print(USAGE)
    return 0 if not argv or argv[0] in ("-h", "--help") else 2


def run(argv: list[str] | None = None) -> int:
    """`main`, with a refusal (`lightning_aapt.errors.Refusal`: a bad key, file, checkpoint or sample) printed as one
    `error: ...` line and exit status 2 instead of a traceback."""
    from lightning_aapt.errors import Refusal

    try:
        return main(argv)
    except Refusal as err:
        print(f"error: {refusal_message(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only or unwritable folder: the file and the reason, one line
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        print(f"error: {f'{err.filename}: ' if err.filename else ''}{err.strerror}", file=sys.stderr)
        return 2


def refusal_message(err: Exception) -> str:
    """The refusal's own message; one raised in a data-loader worker arrives wrapped in the worker's traceback,
    whose last line holds it."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text
