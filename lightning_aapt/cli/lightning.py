"""`fit | validate | test | predict`: LightningCLI over every stage and data module (parser_mode="omegaconf")."""

from __future__ import annotations

import sys
from pathlib import Path

from lightning_aapt.errors import ConfigError

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

# Where each configuration class sits in a stage config, so a refusal names the key a user types.
CONFIG_KEYS = {"BackboneConfig": "model.init_args.backbone", "WorldConfig": "data.init_args.toy_world.world"}


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


def aapt_cli(locks: list | None = None, **kwargs):
    """LightningCLI over every stage and data module, with the data's dimensions linked into the model; `fit` takes
    the run directory's lock into `locks` (the caller releases it)."""
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.utilities import rank_zero_only

    from datamodules.web_video import WebVideoDataModule
    from lightning_aapt.run_lock import RunLock
    from lightning_aapt.stages import StageModule

    class AAPTCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # The data decides latent channels, text width and control width; the model gets them from it.
            parser.link_arguments("data.model_dims", "model.init_args.model_dims", apply_on="instantiate")

        def _parse_ckpt_path(self) -> None:
            # Lightning's own version replaces the config's model settings with the checkpoint's, silently; here
            # the config stays what was typed, and must agree with the checkpoint it resumes.
            check_resume(self.config)

        def before_fit(self) -> None:
            check_run(self.trainer, self.model, self.datamodule)
            if locks is not None and rank_zero_only.rank == 0:  # one process of a multi-process run holds it
                directory = Path(self.trainer.log_dir or self.trainer.default_root_dir)
                locks.append(RunLock(directory, f"the run directory {directory}").acquire())

    return AAPTCLI(StageModule, WebVideoDataModule, subclass_mode_model=True, subclass_mode_data=True,
                   parser_kwargs={"parser_mode": "omegaconf"}, save_config_kwargs={"overwrite": True}, **kwargs)


def check_run(trainer, model, data) -> None:
    """Refuse, by key, trainer and data settings a stage cannot honour, before anything runs (and before
    Lightning's own, less direct errors)."""
    if hasattr(model, "check_clip_frames") and hasattr(data, "num_frames"):
        model.check_clip_frames(data.num_frames)
    clip = trainer.gradient_clip_val
    if not model.automatic_optimization and clip:
        own = getattr(model, "grad_clip", None)
        raise ConfigError(f"trainer.gradient_clip_val={clip}: {type(model).__name__} steps its optimisers itself "
                          f"and clips each network through model.init_args.grad_clip (now {own}); remove "
                          "trainer.gradient_clip_val (or set it to null)")


def check_resume(config) -> None:
    """Refuse, before anything is built, a `--ckpt_path` that is not a readable lightning_aapt checkpoint of the
    configured stage, or (for `fit`: resuming continues a run) whose recorded stage settings contradict the config,
    naming every differing key with both values. How attention runs and how the stage is sharded may change."""
    from lightning_aapt.stages.checkpoints import (
        LIGHTNING_CKPT_NAMES,
        check_stage,
        read_checkpoint,
        settings_differences,
    )

    command = config.get("subcommand")
    path = config[command].get("ckpt_path") if command else None
    if path is None or str(path) in LIGHTNING_CKPT_NAMES:
        return
    where = f"--ckpt_path={path}"
    checkpoint = read_checkpoint(path, "--ckpt_path", weights=False)
    model = config[command]["model"]
    check_stage(checkpoint, str(model["class_path"]).rsplit(".", 1)[-1], where)
    if command != "fit":  # validate/test/predict read the weights; the architecture is checked as they load
        return
    configured = model["init_args"].as_dict() if hasattr(model["init_args"], "as_dict") else dict(model["init_args"])
    differ = settings_differences(dict(checkpoint.get("hyper_parameters") or {}), configured)
    if differ:
        raise ConfigError(f"{where}: resuming continues a run, but the config contradicts the "
                          f"checkpoint's settings: {'; '.join(differ)}. Resume with the run's own config (its "
                          "config.yaml), or start a new run from these weights with model.init_args.init_from")
    lacks = [what for key, what in (("loops", "loop state (the step count: it would restart at 0)"),
                                    ("optimizer_states", "optimizer state (Adam's moments: they would restart)"))
             if not checkpoint.get(key) and (key == "loops" or not Path(path).is_dir())]  # a folder shards them
    if lacks:
        raise ConfigError(f"{where}: resuming continues a run, but this checkpoint holds no {' and no '.join(lacks)}; "
                          "resume from a checkpoint the run wrote, or start a new run from these weights with "
                          "model.init_args.init_from")


def run_lightning(argv: list[str] | None):
    """Run LightningCLI on `argv` and return it (its trainer holds the final metrics); a run SIGTERM stopped exits
    with status SIGTERM_STATUS."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lightning_aapt.signals import SIGTERM_STATUS

    # LightningCLI reads sys.argv; run it on `argv` as if typed, so it never sees two argument lists.
    saved, locks = sys.argv, []
    if argv is not None:
        sys.argv = [saved[0], *argv]
    try:
        return aapt_cli(locks)
    except SIGTERMException as err:  # Lightning's carries no exit code: a stopped run exited 0
        print(err.code or "stopped: SIGTERM at a batch boundary", file=sys.stderr)
        raise SystemExit(SIGTERM_STATUS) from None
    except ValueError as err:
        refused = config_error(err)
        if refused is None:
            raise
        raise refused from None  # the namespace dump buries the reason
    finally:
        sys.argv = saved
        for lock in locks:
            lock.release()


def build_lightning(args: list[str]):
    """Instantiate the model, data module and trainer of a config without running anything (`args` without
    a subcommand, e.g. ["--config", X])."""
    saved = sys.argv
    sys.argv = saved[:1]  # LightningCLI warns when it is given `args` beside a command line of its own
    try:
        return aapt_cli(args=args, run=False)
    except ValueError as err:
        refused = config_error(err)
        if refused is None:
            raise
        raise refused from None
    finally:
        sys.argv = saved
