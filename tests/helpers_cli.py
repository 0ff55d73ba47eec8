"""Running the shipped experiment YAMLs small: the same files, with tiny sizes and temporary paths."""

from __future__ import annotations

from pathlib import Path

import yaml

from lightning_aapt.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
# patch 1: a toy latent patch then has 48 features, no wider than the tiny model (see BackboneConfig's warning)
TINY_BACKBONE = {"dim": 48, "depth": 2, "num_heads": 2, "freq_dim": 32, "patch_size": 1}


def shipped_config(stage: str) -> dict:
    """experiments/<stage>.yaml as a dict; a file it names (data.init_args.toy_world) is made absolute, so a copy
    written elsewhere reads the same."""
    config = yaml.safe_load((EXPERIMENTS / f"{stage}.yaml").read_text())
    data = config["data"]["init_args"]
    if isinstance(data.get("toy_world"), str):
        data["toy_world"] = str((EXPERIMENTS / stage).parent.joinpath(data["toy_world"]).resolve())
    return config


def merge(into: dict, settings: dict) -> None:
    """Merge `settings` into `into` in place, key by key inside nested mappings (a stage's grouped settings: a
    test's `rollout={"frames": 7}` keeps the config's other rollout settings)."""
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def tiny_config(stage: str, tmp_path: Path, data_dir: Path, steps: int = 3, val_every: int | None = None,
                **model_args) -> Path:
    """experiments/<stage>.yaml with the tiny backbone, `steps` optimizer steps (validation every `val_every`
    batches, default `steps`), the tiny dataset and paths in tmp_path; `model_args` merged into model.init_args."""
    config = shipped_config(stage)
    trainer = config["trainer"]
    trainer.update(max_steps=steps, val_check_interval=val_every or steps, limit_val_batches=1, log_every_n_steps=1,
                   default_root_dir=str(tmp_path / stage), enable_progress_bar=False, enable_model_summary=False)
    trainer["logger"]["init_args"]["save_dir"] = str(tmp_path)
    for callback in trainer.get("callbacks", []):  # evaluation callbacks sized to the tiny data
        if callback["class_path"] == "callbacks.FVDCallback":
            trainer["limit_val_batches"] = 2
            callback["init_args"].update(num_clips=4, cache_dir=str(tmp_path / "fd_cache"))
        if callback["class_path"] == "callbacks.LongHorizonDriftCallback":
            callback["init_args"].update(horizon=2, window_frames=4, num_clips=2)
        if callback["class_path"] == "callbacks.DiscriminatorProbeCallback":
            callback["init_args"].update(num_clips=2)
    init = config["model"]["init_args"]
    init["backbone"].update(TINY_BACKBONE)
    if "rollout" in init:  # stage 3 judges segments as long as its (6-frame) clips unless a test says otherwise
        init["rollout"]["segment_frames"] = None
    merge(init, model_args)
    config["data"]["init_args"].update(data_dir=str(data_dir), num_frames=6, batch_size=2, toy_world=None)
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def checkpointing_only(config: Path, every: int, plugin: dict | None = None) -> Path:
    """Edit a `tiny_config` in place into a run without validation or evaluation callbacks that checkpoints every
    `every` steps (`plugin`: the checkpoint writer, class_path/init_args, in place of AtomicCheckpointIO)."""
    spec = yaml.safe_load(config.read_text())
    spec["trainer"].update(num_sanity_val_steps=0, limit_val_batches=0)
    callbacks = [c for c in spec["trainer"]["callbacks"] if c["class_path"].startswith("lightning.")]
    for c in callbacks:
        if c["class_path"].endswith("ModelCheckpoint"):
            c["init_args"]["every_n_train_steps"] = every
    spec["trainer"]["callbacks"] = callbacks
    if plugin is not None:
        spec["trainer"]["plugins"] = [plugin]
    config.write_text(yaml.safe_dump(spec))
    return config


def fit(config: Path, *overrides: str) -> None:
    assert main(["fit", "--config", str(config), *overrides]) == 0
