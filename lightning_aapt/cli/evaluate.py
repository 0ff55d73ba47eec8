"""`python -m lightning_aapt eval`: the FVDCallback and LongHorizonDriftCallback metrics of one checkpoint, outside
training (`lightning_aapt.evaluation`; on the toy world also the objects' lifetimes and amplitude transfer), written
as `report.json`, `report.md`, `drift_plot.png` and `drift_stream.gif` (generated | truth).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
from omegaconf import OmegaConf

from lightning_aapt.cli.lightning import build_lightning
from lightning_aapt.cli.signature import run_function
from lightning_aapt.data import first_clips
from lightning_aapt.errors import CheckpointError, ConfigError, check_at_least
from lightning_aapt.evaluation.drift import stream_drift
from lightning_aapt.evaluation.generated_vs_real import generated_vs_real
from lightning_aapt.evaluation.report import write_report
from lightning_aapt.evaluation.transfer import validation_transfer
from lightning_aapt.metrics.extractors import make_extractor


def load_stage(ckpt: Path, config: Path) -> tuple[L.LightningModule, L.LightningDataModule, int | None]:
    """The stage module and data module the YAML describes, with the checkpoint's weights (EMA included; a plain
    backbone checkpoint from `merge` fills both), and the checkpoint's global step."""
    from lightning_aapt.stages.checkpoints import (
        brief,
        check_backbone,
        check_stage,
        read_checkpoint,
        settings_differences,
        stage_of,
    )

    if not config.is_file():
        raise ConfigError(f"--config {config}: no such experiment YAML")
    checkpoint = read_checkpoint(ckpt, "--ckpt")
    init_args = OmegaConf.to_container(OmegaConf.load(config)).get("model", {}).get("init_args", {})
    # The weights come from --ckpt: do not load the previous stages' checkpoints the YAML starts from.
    no_init = [f"--model.init_args.{k}=null" for k in ("init_from", "disc_init_from") if k in init_args]
    cli = build_lightning(["--config", str(config), *no_init, "--trainer.logger=false",
                           "--trainer.enable_progress_bar=false"])
    module, where = cli.model, f"--ckpt={ckpt}"
    check_stage(checkpoint, type(module).__name__, where)
    check_backbone(checkpoint, module.cfg, where)
    state = checkpoint["state_dict"]
    if stage_of(checkpoint) is None:  # a plain backbone (`merge`): the trained and the sampling weights alike
        weights = {k.removeprefix("model."): v for k, v in state.items()}
        state = {f"{name}.{k}": v for name in ("model", "ema") if getattr(module, name, None) is not None
                 for k, v in weights.items()}
    try:
        module.load_state_dict(state)
    except RuntimeError as err:  # same stage and backbone: a setting that shapes the stage's other networks
        recorded = dict(checkpoint.get("hyper_parameters") or {})
        differ = settings_differences(recorded, dict(module.hparams), ignore=("init_from", "disc_init_from"))
        why = f"settings that differ: {'; '.join(differ)}" if differ else brief(err)
        raise CheckpointError(f"{where} does not fit the {type(module).__name__} of --config {config} ({why})") from err
    module.eval()
    return module, cli.datamodule, checkpoint.get("global_step")


def evaluate(ckpt: Path, config: Path, out: Path | None = None, extractor: Literal["rand3d", "i3d"] = "rand3d",
             i3d_path: Path | None = None, num_clips: int = 64, horizon: int = 10, drift_clips: int = 8,
             window_frames: int | None = None, steps: int | None = None, cache_dir: Path | None = None,
             seed: int = 0, overwrite: bool = False) -> int:
    """Fréchet/kernel distance and long-horizon drift of a checkpoint, written as a report.

    Args:
        ckpt: a stage checkpoint (e.g. runs/pipeline/stage3/checkpoints/last.ckpt), or a sharded checkpoint folder.
        config: the stage's experiment YAML (model class, data).
        out: report directory (default: <run dir>/eval/<checkpoint name>).
        extractor: video features: rand3d (offline) or i3d (FVD; needs i3d_path).
        i3d_path: local I3D weights (StyleGAN-V TorchScript or InceptionI3d state dict).
        num_clips: clips for the Fréchet/kernel distance.
        horizon: drift streams: multiples of the clip length.
        drift_clips: drift streams.
        window_frames: drift window (default: the clip length).
        steps: sampler steps per frame (default: the stage's sample_steps).
        cache_dir: real-feature cache (default: $XDG_CACHE_HOME/lightning_aapt/real_features).
        seed: seed of everything random.
        overwrite: replace the report an earlier `eval` wrote to --out.
    """
    default = " (leave it out for the default)"
    check_at_least(("--num_clips", num_clips, 1), ("--horizon", horizon, 1), ("--drift_clips", drift_clips, 1),
                   ("--window_frames", window_frames, 1), ("--steps", steps, 1),
                   why={"--window_frames": default, "--steps": default})
    L.seed_everything(seed, verbose=False)
    out = out or ckpt.parent.parent / "eval" / ckpt.stem
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out={out} is a file: the report is a folder (report.md, report.json, drift plots)")
    if (out / "report.json").exists() and not overwrite:
        raise ConfigError(f"--out={out} already holds a report: pass --overwrite true to replace it, or name "
                          "another --out")
    module, data, global_step = load_stage(ckpt, config)
    F, K = data.num_frames, module.context_frames
    window = window_frames or F
    if horizon * F - K < window:
        raise ConfigError(f"--horizon {horizon}: a drift stream of {horizon} x {F} frames after {K} real context "
                          f"frames holds no full {window}-frame window; give --horizon {-(-(window + K) // F)} or more")
    steps = steps or module.sample_steps
    module.sample_steps = steps
    features = make_extractor(extractor, None if i3d_path is None else str(i3d_path), flag="--i3d_path")
    data.setup("validate")
    batches = first_clips(data.val_dataloader(), num_clips)
    values, protocol = generated_vs_real(lambda batch, i: module.predict_step(batch, i)["latents"], batches,
                                         data.codec, features, num_clips, data.data_dir, cache_dir)
    drift = stream_drift(module.sampling_model, data.data_dir, batches[0], horizon, window_frames, features,
                         drift_clips, steps, module.timestep_cfg.shift, module.context_frames, seed)
    transfer = validation_transfer(module.sampling_model, data.data_dir, drift_clips, F, steps,
                                   module.timestep_cfg.shift, seed, min(K, F - 1))  # toy world: why objects fade
    result = {"checkpoint": str(ckpt), "config": str(config), "model": type(module).__name__,
              "global_step": global_step, "steps_per_frame": steps,
              "fd": {"values": values, "protocol": {**protocol, **module.sampling_protocol()}},
              "horizon": horizon, "drift_clips": drift_clips, "drift_frames": drift.generated.shape[1],
              "drift": drift.report.to_dict(), "drift_floor": drift.floor.to_dict() if drift.floor else None,
              "transfer": transfer}
    print(write_report(out, result, drift))
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
    return 0


def main(argv: list[str]) -> int:
    return run_function(evaluate, argv, "eval")
