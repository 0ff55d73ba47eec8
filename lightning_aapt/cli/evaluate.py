"""`python -m lightning_aapt eval`: the FVDCallback and LongHorizonDriftCallback metrics of one checkpoint, outside
training, written as `report.json`, `report.md`, `drift_plot.png` and `drift_stream.gif` (generated | truth).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf
from PIL import Image

from callbacks.drift import drift_of_module, plot_curves
from callbacks.fvd import generated_vs_real
from datamodules.shards import read_manifest
from lightning_aapt.cli.lightning import build_lightning
from lightning_aapt.codecs import codec_from_manifest
from lightning_aapt.files import write_atomic
from lightning_aapt.inference.video import to_uint8, write_video
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
    if not ckpt.exists():
        raise FileNotFoundError(f"--ckpt {ckpt}: no such checkpoint")
    if not config.is_file():
        raise FileNotFoundError(f"--config {config}: no such experiment YAML")
    init_args = OmegaConf.to_container(OmegaConf.load(config)).get("model", {}).get("init_args", {})
    # The weights come from --ckpt: do not load the previous stages' checkpoints the YAML starts from.
    no_init = [f"--model.init_args.{k}=null" for k in ("init_from", "disc_init_from") if k in init_args]
    cli = build_lightning(["--config", str(config), *no_init, "--trainer.logger=false",
                           "--trainer.enable_progress_bar=false"])
    state = read_checkpoint(ckpt)
    try:
        cli.model.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise ValueError(f"--ckpt {ckpt} does not fit the model of --config {config}: {err}") from err
    cli.model.eval()
    return cli.model, cli.datamodule, state.get("global_step")


def read_checkpoint(path: Path) -> dict:
    """A checkpoint file, or a sharded checkpoint folder (its weights gathered here)."""
    from lightning_aapt.stages.checkpoints import read_sharded_checkpoint

    return read_sharded_checkpoint(path) if path.is_dir() else torch.load(path, map_location="cpu", weights_only=True)


def markdown(result: dict) -> str:
    fd, drift = result["fd"], result["drift"]
    lines = [f"# Evaluation of `{result['checkpoint']}`", "",
             f"{result['model']}, global step {result['global_step']}, sampler steps per frame "
             f"{result['steps_per_frame']}.", "", "## Generated vs real clips", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.6g} |" for k, v in fd["values"].items()]
    lines += ["", "Protocol:", ""] + [f"- {k}: {v}" for k, v in fd["protocol"].items()]
    curves = drift["curves"]
    fps = drift.get("fps") or 1
    lines += ["", f"## Long-horizon drift: {result['drift_frames']} frames ({result['horizon']}x the clip), "
              f"{result['drift_clips']} streams, windows of {drift['window_frames']} frames", "",
              "| window | seconds | " + " | ".join(curves) + " |", "|---" * (len(curves) + 2) + "|"]
    for k, start in enumerate(drift["starts"]):
        seconds = f"{start / fps:.2f}-{(start + drift['window_frames']) / fps:.2f}"
        lines.append(f"| {k} | {seconds} | " + " | ".join(f"{curves[n][k]:.4g}" for n in curves) + " |")
    lines.append("| last / first | | " + " | ".join(f"{drift['ratios'][n]:.3g}" for n in curves) + " |")
    floor = result.get("drift_floor")
    if floor:
        lines.append("| truth itself: first window | | " + " | ".join(f"{floor['curves'][n][0]:.4g}" for n in curves)
                     + " |")
        lines.append("| truth itself: last window | | " + " | ".join(f"{floor['curves'][n][-1]:.4g}" for n in curves)
                     + " |")
    lines += ["", "\"Truth itself\" streams the toy world's re-rendered truth through the same metrics: what a "
              "perfect generator would score. `drift_plot.png`: every curve divided by its first window; "
              "`drift_stream.gif`: the first stream, generated left, truth right (toy world)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    L.seed_everything(args.seed, verbose=False)
    ckpt = Path(args.ckpt)
    module, data, global_step = load_stage(ckpt, Path(args.config))
    out = Path(args.out or ckpt.parent.parent / "eval" / ckpt.stem)
    out.mkdir(parents=True, exist_ok=True)
    extractor = make_extractor(args.extractor, args.i3d_path, flag="--i3d_path")
    if args.steps:
        module.sample_steps = args.steps
    data.setup("validate")
    codec = codec_from_manifest(read_manifest(data.data_dir))
    batches = list(_take(data.val_dataloader(), args.num_clips))
    values, protocol = generated_vs_real(module, batches, codec, extractor, args.num_clips, data.data_dir,
                                         args.cache_dir)
    report, videos = drift_of_module(module, data.data_dir, batches[0], args.horizon, args.window_frames,
                                     extractor, args.drift_clips, module.sample_steps, args.seed)
    result = {"checkpoint": str(ckpt), "config": args.config, "model": type(module).__name__,
              "global_step": global_step, "steps_per_frame": module.sample_steps,
              "fd": {"values": values, "protocol": protocol}, "horizon": args.horizon,
              "drift_clips": args.drift_clips, "drift_frames": videos["generated"].shape[1],
              "drift": report.to_dict(), "drift_floor": videos["floor"].to_dict() if videos["floor"] else None}
    write_atomic(out / "report.json", json.dumps(result, indent=2).encode())
    write_atomic(out / "report.md", markdown(result).encode())
    Image.fromarray(plot_curves(report)).save(out / "drift_plot.png")
    video = videos["generated"][0].clamp(0, 1)
    if videos["truth"] is not None:
        video = torch.cat([video, videos["truth"][0]], dim=-1)
    write_video(out / "drift_stream.gif", to_uint8(video), fps=report.fps or 8, scale=4)
    print(markdown(result))
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
    return 0


def _take(loader, clips: int):
    """Batches of the loader until `clips` clips have been seen."""
    seen = 0
    for batch in loader:
        yield batch
        seen += len(batch)
        if seen >= clips:
            return
