"""`fit | validate | test | predict`: LightningCLI over every stage and data module (parser_mode="omegaconf")."""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from pathlib import Path

from lightning_aapt.errors import ConfigError

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

# Where each configuration class sits in a stage config, so a refusal names the key a user types.
CONFIG_KEYS = {"BackboneConfig": "model.init_args.backbone", "WorldConfig": "data.init_args.toy_world.world"}


def config_error(err: Exception) -> ConfigError | None:
    """The refusal inside a LightningCLI instantiation error, which lists every type it tried (the model's class,
    None) and dumps the whole namespace; None when `err` is not one."""
    tried = [(len(line) - len(line.lstrip()), line.strip()[2:]) for line in str(err).splitlines()
             if line.strip().startswith("- ")]
    reasons = [(depth, line) for depth, line in tried
               if not line.startswith(("Expected a <class 'NoneType'>", "Does not validate against any"))]
    if "Given value" not in str(err) or not reasons:
        return None
    reason = max(reasons, key=lambda r: r[0])[1]  # the innermost: a nested setting's own refusal
    for name, key in CONFIG_KEYS.items():
        reason = reason.replace(f"{name}.", f"{key}.").replace(f"{name} needs", f"{key} needs")
    return ConfigError(reason)


def settings_classes() -> dict[str, type]:
    """The settings a config gives as a mapping of a dataclass's fields, by the key a user types."""
    from lightning_aapt.backbone import BackboneConfig
    from lightning_aapt.backbone.lora import LoraConfig
    from lightning_aapt.parallel import ParallelConfig
    from lightning_aapt.stages.adversarial_config import (
        DiscriminatorConfig,
        PenaltyConfig,
        RegressionConfig,
        RolloutConfig,
    )
    from lightning_aapt.stages.optim import OptimizerConfig
    from lightning_aapt.stages.randomness import TimestepConfig
    from lightning_aapt.world.scene import WorldConfig

    model = {"backbone": BackboneConfig, "optimizer": OptimizerConfig, "timesteps": TimestepConfig,
             "parallel": ParallelConfig, "lora": LoraConfig, "rollout": RolloutConfig,
             "discriminator": DiscriminatorConfig, "discriminator.optimizer": OptimizerConfig,
             "penalty": PenaltyConfig, "regression": RegressionConfig}
    return {**{f"model.init_args.{k}": v for k, v in model.items()}, "data.init_args.toy_world.world": WorldConfig}


def nulls_as_mappings(argv: list[str]) -> list[str]:
    """`--<settings>.<field>=null` typed as `--<settings>={<field>: null}`, which the parser merges into the config's
    other fields alike: under a stage's `class_path` it refuses the first spelling ("Expected a <class 'int'>", for
    every nested dataclass field, jsonargparse 4.53)."""
    classes, out, args = settings_classes(), [], list(argv)
    while args:
        arg = args.pop(0)
        key, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not eq and key and args and args[0] == "null":  # `--key null`, two words
            eq, value = "=", args.pop(0)
        prefix, _, field = key.rpartition(".")
        if prefix in classes and value == "null":
            arg = f"--{prefix}={{{field}: null}}"
        elif eq and not arg.endswith(f"={value}"):  # rejoined from two words
            arg = f"--{key}={value}"
        out.append(arg)
    return out


def check_setting_keys(argv: list[str]) -> None:
    """Refuse a command-line key that is not a field of the settings it names, before the parser sees it: the parser
    would take `--model.init_args.backbone.num_head=8` as `num_heads` without a word (an abbreviation)."""
    classes = settings_classes()
    for arg in argv:
        key = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        prefix, _, field = key.rpartition(".")
        if prefix in classes:
            known = [f.name for f in dataclasses.fields(classes[prefix])]
            if field not in known:
                close = difflib.get_close_matches(field, known, n=1)
                hint = f"; did you mean {prefix}.{close[0]}?" if close else f" (its fields: {', '.join(known)})"
                raise ConfigError(f"{key}: {prefix} has no setting {field!r}{hint}")


def check_config_files(argv: list[str]) -> None:
    """Refuse a `--config` file that cannot be a stage config, by file: unreadable, not UTF-8 text, not YAML, not a
    mapping, or a stage's or data module's settings placed beside `class_path` instead of under `init_args`."""
    import yaml

    paths = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config", "-c")]
    paths += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for path in map(Path, paths):
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"--config {path}: no such file") from None
        except IsADirectoryError:
            raise ConfigError(f"--config {path}: is a folder; name a YAML file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--config {path}: not a text file ({err})") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            why = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"--config {path}: not YAML{where} ({why})") from None
        if not isinstance(spec, dict):
            got = "an empty file" if spec is None else f"a {type(spec).__name__}"
            raise ConfigError(f"--config {path}: expected a mapping (trainer, model, data, ...), got {got}")
        for part in ("model", "data"):
            section = spec.get(part)
            misplaced = sorted(set(section) - {"class_path", "init_args", "dict_kwargs"}) \
                if isinstance(section, dict) and "class_path" in section else []
            if misplaced:
                raise ConfigError(f"--config {path}: {part}.{misplaced[0]} is beside {part}.class_path; a "
                                  f"{part}'s settings go under {part}.init_args ({', '.join(misplaced)})")


def check_setting_shapes(config) -> None:
    """Refuse a setting given as something other than a mapping of its fields (`backbone: [48, 2, 2]`), by key,
    before instantiation turns it into a message about `functools.partial`."""
    command = config.get("subcommand")
    if command is None:
        return
    for key in settings_classes():
        value = config[command]
        for part in key.split("."):
            value = value.get(part) if hasattr(value, "get") else None
        if value is not None and not hasattr(value, "items"):
            fields = ", ".join(f.name for f in dataclasses.fields(settings_classes()[key]))
            raise ConfigError(f"{key} must be a mapping of its fields ({fields}), got {value!r}")


def parse_error(text: str) -> ConfigError:
    """jsonargparse's multi-line account of a value it refused (nested `Parser key "..."` blocks, every type it
    tried, the namespace) reduced to one line: the key as a user types it and the innermost reason."""
    keys, reason = [], None
    noise = ("Does not validate", "Subtypes:", "Errors:", "- Problem with given class_path", "Given value",
             "- Expected a <class 'NoneType'>", "tip:", "usage:")
    for line in text.splitlines():
        stripped = line.strip()
        if match := re.match(r'(?:error: )?Parser key "([^"]+)":?\s*(.*)', stripped):
            keys.append(match.group(1))
            reason = match.group(2) or reason
        elif stripped and not stripped.startswith(noise):
            reason = stripped.removeprefix("error: ").removeprefix("- ")
    if keys and keys[0] in ("model", "data") and len(keys) > 1:
        keys.insert(1, "init_args")  # a stage and a data module are given by class_path + init_args
    key = ".".join(k for part in keys for k in part.split(".") if k)
    unknown = re.fullmatch(r"Option '([^']+)' is not accepted", reason or "")
    given = re.search(r"given class_path '([\w.]+)'", text)
    if unknown and given and keys in (["model"], ["data"]):  # a stage's or data module's setting misspelled
        name, known = unknown.group(1), init_parameters(given.group(1))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {key}.init_args.{close[0]}?" if close else f" (its settings: {', '.join(known)})"
        return ConfigError(f"{key}.init_args.{name}: {given.group(1).rsplit('.', 1)[-1]} has no setting {name!r}"
                           f"{hint}")
    return ConfigError(f"{key}: {reason}" if key and reason else (reason or text.strip().splitlines()[-1]))


def init_parameters(class_path: str) -> list[str]:
    """The settings a stage or data module class takes, its bases' included where it passes them on (`**stage`)."""
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return []
    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break  # it does not pass settings on to its base
    return list(dict.fromkeys(names))


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

        def before_instantiate_classes(self) -> None:
            check_setting_shapes(self.config)

        def before_fit(self) -> None:
            check_run(self.trainer, self.model, self.datamodule)
            if locks is not None and rank_zero_only.rank == 0:  # one process of a multi-process run holds it
                directory = Path(self.trainer.log_dir or self.trainer.default_root_dir)
                locks.append(RunLock(directory, f"the run directory {directory}").acquire())

    return AAPTCLI(StageModule, WebVideoDataModule, subclass_mode_model=True, subclass_mode_data=True,
                   parser_kwargs={"parser_mode": "omegaconf", "exit_on_error": False, "allow_abbrev": False,
                                  **{c: {"exit_on_error": False, "allow_abbrev": False} for c in LIGHTNING_COMMANDS}},
                   save_config_kwargs={"overwrite": True}, **kwargs)


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
    from lightning_aapt.checkpoints import (
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
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lightning_aapt.signals import SIGTERM_STATUS

    # LightningCLI reads sys.argv; run it on `argv` as if typed, so it never sees two argument lists.
    saved, locks = sys.argv, []
    argv = sys.argv[1:] if argv is None else argv
    check_config_files(argv)
    check_setting_keys(argv)
    sys.argv = [saved[0], *nulls_as_mappings(argv)]
    try:
        return aapt_cli(locks)
    except SIGTERMException as err:  # Lightning's carries no exit code: a stopped run exited 0
        print(err.code or "stopped: SIGTERM at a batch boundary", file=sys.stderr)
        raise SystemExit(SIGTERM_STATUS) from None
    except ArgumentError as err:  # a value the parser refused: one line, not a usage text and a namespace dump
        raise parse_error(str(err)) from None
    except MisconfigurationException as err:  # Lightning's own refusal of a trainer setting, one line
        raise ConfigError(f"trainer: {str(err).strip().splitlines()[0]}") from None
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


def stage_config_parser(with_model: bool):
    """A parser of a stage config's sections as `fit` lays them out, building none of them: the data module's settings
    always checked; the stage's too `with_model` (else, like trainer, optimizer and lr_scheduler, a plain mapping);
    a data section required only without the model (the data is then all that is wanted)."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    from datamodules.web_video import WebVideoDataModule

    parser = ArgumentParser(parser_mode="omegaconf", exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--seed_everything", type=bool | int, default=True)
    parser.add_argument("--ckpt_path", type=str | None, default=None)
    for section in ("trainer", *(() if with_model else ("model",)), "optimizer", "lr_scheduler"):  # read, not checked
        parser.add_argument(f"--{section}", type=dict | None, default=None)
    if with_model:
        from lightning_aapt.stages import StageModule

        parser.add_subclass_arguments(StageModule, "model", required=True)
    parser.add_subclass_arguments(WebVideoDataModule, "data", required=not with_model)
    return parser


def read_stage_config(config: Path, args: list[str] | tuple[str, ...] = (), flag: str = "--config"):
    """A stage config (and command-line `args` after it) as `fit` reads its model and data, every default filled in
    and every key checked, but nothing built (no checkpoint is opened): a Namespace with `model` and `data`
    (class_path, init_args) and `trainer` as a plain mapping. For commands that plan or check a run (`plan`,
    `pipeline`)."""
    from jsonargparse import ArgumentError

    if not config.is_file():
        raise ConfigError(f"{flag} {config}: no such experiment YAML")
    check_config_files(["--config", str(config), *args])
    check_setting_keys(list(args))
    parser = stage_config_parser(with_model=True)
    try:
        return parser.parse_args(["--config", str(config), *nulls_as_mappings(list(args))])
    except ArgumentError as err:
        raise ConfigError(f"{flag} {config}: {parse_error(str(err))}") from None


def build_datamodule(config: Path, flag: str = "--config"):
    """The data module of a stage config alone (its `data` section; the model, trainer and the checkpoints they
    start from are parsed as plain mappings and never built), e.g. for `eval`, which takes its generator from
    `--ckpt`."""
    from jsonargparse import ArgumentError

    if not config.is_file():
        raise ConfigError(f"{flag} {config}: no such experiment YAML")
    check_config_files(["--config", str(config)])
    parser = stage_config_parser(with_model=False)
    try:
        return parser.instantiate(parser.parse_args(["--config", str(config)])).data
    except ArgumentError as err:
        if "required: data" in str(err):
            raise ConfigError(f"{flag} {config}: no data section (data.class_path and data.init_args: the evaluation "
                              "data)") from None
        raise ConfigError(f"{flag} {config}: {parse_error(str(err))}") from None
    except ValueError as err:
        refused = config_error(err)
        if refused is None:
            raise
        raise ConfigError(f"{flag} {config}: {refused}") from None
