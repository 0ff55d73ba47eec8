"""`python -m lightning_aapt eval`: the FVDCallback and LongHorizonDriftCallback metrics of one checkpoint, outside
training (`lightning_aapt.evaluation`), written as `report.json`, `report.md`, `drift_plot.png` and
`drift_stream.gif` (generated | truth).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from lightning_aapt.cli.lightning import build_lightning
from lightning_aapt.data import first_clips
from lightning_aapt.evaluation.drift import stream_drift
from lightning_aapt.evaluation.generated_vs_real import generated_vs_real
from lightning_aapt.evaluation.report import write_report
from lightning_aapt.metrics.extractors import make_extractor


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lightning_aapt eval",
                                     description="Fréchet/kernel distance and long-horizon drift of a checkpoint.")
    parser.add_argument("--ckpt", required=True, help="a stage checkpoint (e.g. runs/pipeline/stage3/checkpoints/"
                        "last.ckpt)")
    parser.add_argument("--config", required=True, help="the stage's experiment YAML (model class, data)")
    parser.add_argument("--out", help="report directory (default: <run dir>/eval/<checkpoint name>)")
    parser.add_argument("--extractor", default="rand3d", choices=["rand3d", "i3d"])
    parser.add_argument("--i3d_path", help="local I3D weights (StyleGAN-V TorchScript or InceptionI3d state dict)")
    parser.add_argument("--num_clips", type=int, default=64, help="clips for the Fréchet/kernel distance")
    parser.add_argument("--horizon", type=int, default=10, help="drift streams: multiples of the clip length")
    parser.add_argument("--drift_clips", type=int, default=8, help="drift streams")
    parser.add_argument("--window_frames", type=int, help="drift window (default: the clip length)")
    parser.add_argument("--steps", type=int, help="sampler steps per frame (default: the stage's sample_steps)")
    parser.add_argument("--cache_dir", help="real-feature cache (default: $XDG_CACHE_HOME/lightning_aapt/...)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def load_stage(ckpt: Path, config: Path) -> tuple[L.LightningModule, L.LightningDataModule, int | None]:
    """The stage module and data module the YAML describes, with the checkpoint's weights (EMA included), and
    the checkpoint's global step."""
    from lightning_aapt.stages.checkpoints import read_sharded_checkpoint

    if not ckpt.exists():
        raise FileNotFoundError(f"--ckpt {ckpt}: no such checkpoint")
    if not config.is_file():
        raise FileNotFoundError(f"--config {config}: no such experiment YAML")
    init_args = OmegaConf.to_container(OmegaConf.load(config)).get("model", {}).get("init_args", {})
    # The weights come from --ckpt: do not load the previous stages' checkpoints the YAML starts from.
    no_init = [f"--model.init_args.{k}=null" for k in ("init_from", "disc_init_from") if k in init_args]
    state = (read_sharded_checkpoint(ckpt) if ckpt.is_dir()
             else torch.load(ckpt, map_location="cpu", weights_only=True))
    cli = build_lightning(["--config", str(config), *no_init, "--trainer.logger=false",
                           "--trainer.enable_progress_bar=false"])
    try:
        cli.model.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise ValueError(f"--ckpt {ckpt} does not fit the model of --config {config}: {err}") from err
    cli.model.eval()
    return cli.model, cli.datamodule, state.get("global_step")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    L.seed_everything(args.seed, verbose=False)
    ckpt = Path(args.ckpt)
    out = Path(args.out or ckpt.parent.parent / "eval" / ckpt.stem)
    module, data, global_step = load_stage(ckpt, Path(args.config))
    steps = args.steps or module.sample_steps
    module.sample_steps = steps
    extractor = make_extractor(args.extractor, args.i3d_path, flag="--i3d_path")
    data.setup("validate")
    batches = first_clips(data.val_dataloader(), args.num_clips)
    values, protocol = generated_vs_real(lambda batch, i: module.predict_step(batch, i)["latents"], batches,
                                         data.codec, extractor, args.num_clips, data.data_dir, args.cache_dir)
    drift = stream_drift(module.sampling_model, data.data_dir, batches[0], args.horizon, args.window_frames,
                         extractor, args.drift_clips, steps, module.timestep_cfg.shift, module.context_frames,
                         args.seed)
    result = {"checkpoint": str(ckpt), "config": args.config, "model": type(module).__name__,
              "global_step": global_step, "steps_per_frame": steps,
              "fd": {"values": values, "protocol": {**protocol, **module.sampling_protocol()}},
              "horizon": args.horizon, "drift_clips": args.drift_clips, "drift_frames": drift.generated.shape[1],
              "drift": drift.report.to_dict(), "drift_floor": drift.floor.to_dict() if drift.floor else None}
    print(write_report(out, result, drift))
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
    return 0
