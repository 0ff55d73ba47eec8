"""`fit | validate | test | predict`: LightningCLI over every stage and data module (parser_mode="omegaconf")."""

from __future__ import annotations

import sys
from pathlib import Path

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

# Where each configuration class sits in a stage config, so a refusal names the key a user types.
CONFIG_KEYS = {"BackboneConfig": "model.init_args.backbone", "WorldConfig": "data.init_args.toy_world.world"}


class ConfigError(ValueError):
    """A configuration value the code refused; the message leads with its key."""


def config_error(err: Exception) -> ConfigError | None:
    """The refusal inside a LightningCLI instantiation error, which lists every type it tried (the model's class,
    None) and dumps the whole namespace; None when `err` is not one."""
    tried = [line.strip()[2:] for line in str(err).splitlines() if line.strip().startswith("- ")]
    reasons = [line for line in tried if not line.startswith("Expected a <class 'NoneType'>")]
    if "Given value" not in str(err) or not reasons:
        return None
    reason = reasons[0]
    for name, key in CONFIG_KEYS.items():
        reason = reason.replace(f"{name}.", f"{key}.").replace(f"{name} needs", f"{key} needs")
    return ConfigError(reason)


def lightning_cli(argv: list[str] | None) -> int:
    """LightningCLI on `argv` (None: the command line itself)."""
    run_lightning(argv)
    return 0


def aapt_cli(**kwargs):
    """LightningCLI over every stage and data module, with the data's dimensions linked into the model."""
    from lightning.pytorch.cli import LightningCLI

    from datamodules.web_video import WebVideoDataModule
    from lightning_aapt.stages import StageModule

    class AAPTCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # The data decides latent channels, text width and control width; the model gets them from it.
            parser.link_arguments("data.model_dims", "model.init_args.model_dims", apply_on="instantiate")

        def before_fit(self) -> None:
            check_trainer_fits_model(self.trainer, self.model)

    return AAPTCLI(StageModule, WebVideoDataModule, subclass_mode_model=True, subclass_mode_data=True,
                   parser_kwargs={"parser_mode": "omegaconf"}, save_config_kwargs={"overwrite": True}, **kwargs)


def check_trainer_fits_model(trainer, model) -> None:
    """Refuse, by key, trainer settings a stage cannot honour (before Lightning's own, less direct error)."""
    clip = trainer.gradient_clip_val
    if not model.automatic_optimization and clip:
        own = getattr(model, "grad_clip", None)
        raise ConfigError(f"trainer.gradient_clip_val={clip}: {type(model).__name__} steps its optimisers itself "
                          f"and clips each network through model.init_args.grad_clip (now {own}); remove "
                          "trainer.gradient_clip_val (or set it to null)")


def check_ckpt_path(argv: list[str]) -> None:
    """Fail early, naming the file, when `--ckpt_path` is missing or not a complete checkpoint (a zip archive;
    a folder is a sharded checkpoint). 'last' / 'best' / 'hpc' are Lightning's names and pass."""
    import zipfile

    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--ckpt_path=") else (
            argv[i + 1] if arg == "--ckpt_path" and i + 1 < len(argv) else None)
        if value in (None, "null", "last", "best", "hpc", "registry"):
            continue
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"--ckpt_path {path}: no such checkpoint")
        if path.is_file() and not zipfile.is_zipfile(path):
            raise ValueError(f"--ckpt_path {path}: unreadable checkpoint (truncated, or not a torch checkpoint)")


def run_lightning(argv: list[str] | None):
    """Run LightningCLI on `argv` and return it (its trainer holds the final metrics)."""
    check_ckpt_path(sys.argv[1:] if argv is None else argv)
    # LightningCLI reads sys.argv; run it on `argv` as if typed, so it never sees two argument lists.
    saved = sys.argv
    if argv is not None:
        sys.argv = [saved[0], *argv]
    try:
        return aapt_cli()
    except ValueError as err:
        refused = config_error(err)
        if refused is None:
            raise
        raise refused from None  # the namespace dump buries the reason
    finally:
        sys.argv = saved


def build_lightning(args: list[str]):
    """Instantiate the model, data module and trainer of a config without running anything (`args` without
    a subcommand, e.g. ["--config", X])."""
    try:
        return aapt_cli(args=args, run=False)
    except ValueError as err:
        refused = config_error(err)
        if refused is None:
            raise
        raise refused from None
