"""`python -m lightning_aapt eval`: the FVDCallback and LongHorizonDriftCallback metrics of one checkpoint, outside
training (`lightning_aapt.evaluation`; on the toy world also the objects' lifetimes and amplitude transfer), written
as `report.json`, `report.md`, `drift_plot.png` and `drift_stream.gif` (generated | truth).

The generator comes from the checkpoint the way `play` and `sample` load it (`checkpoints.load_generator`: its
sampling weights and recorded sampler settings; no stage module, teacher or discriminator is built); the config
gives only the data (its `data` section).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from lightning_aapt.cli.lightning import build_datamodule
from lightning_aapt.cli.signature import run_function
from lightning_aapt.data import first_clips
from lightning_aapt.errors import ConfigError, check_at_least
from lightning_aapt.evaluation.drift import stream_drift
from lightning_aapt.evaluation.generated_vs_real import generated_vs_real
from lightning_aapt.evaluation.report import write_report
from lightning_aapt.evaluation.transfer import validation_transfer
from lightning_aapt.metrics.extractors import make_extractor


def evaluate(ckpt: Path, config: Path, out: Path | None = None, extractor: Literal["rand3d", "i3d"] = "rand3d",
             i3d_path: Path | None = None, num_clips: int = 64, horizon: int = 10, drift_clips: int = 8,
             window_frames: int | None = None, steps: int | None = None, cache_dir: Path | None = None,
             seed: int = 0, overwrite: bool = False) -> int:
    """Fréchet/kernel distance and long-horizon drift of a checkpoint, written as a report.

    Args:
        ckpt: a checkpoint of any stage (e.g. runs/pipeline/stage3/checkpoints/last.ckpt), a sharded checkpoint
            folder, or a plain one `merge` wrote.
        config: an experiment YAML whose data section (data.class_path, data.init_args) gives the evaluation data.
        out: report directory (default: <run dir>/eval/<checkpoint name>).
        extractor: video features: rand3d (offline) or i3d (FVD; needs i3d_path).
        i3d_path: local I3D weights (StyleGAN-V TorchScript or InceptionI3d state dict).
        num_clips: clips for the Fréchet/kernel distance.
        horizon: drift streams: multiples of the clip length.
        drift_clips: drift streams.
        window_frames: drift window (default: the clip length).
        steps: sampler steps per frame (default: the checkpoint's own, its stage's sample_steps).
        cache_dir: real-feature cache (default: $XDG_CACHE_HOME/lightning_aapt/real_features).
        seed: seed of everything random.
        overwrite: replace the report an earlier `eval` wrote to --out.
    """
    from lightning_aapt.checkpoints import load_generator
    from lightning_aapt.inference.clips import sample_clips, sampling_protocol

    default = " (leave it out for the default)"
    check_at_least(("--num_clips", num_clips, 1), ("--horizon", horizon, 1), ("--drift_clips", drift_clips, 1),
                   ("--window_frames", window_frames, 1), ("--steps", steps, 1),
                   why={"--window_frames": default, "--steps": " (leave it out for the checkpoint's own)"})
    torch.manual_seed(seed)
    out = out or ckpt.parent.parent / "eval" / ckpt.stem
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out={out} is a file: the report is a folder (report.md, report.json, drift plots)")
    if (out / "report.json").exists() and not overwrite:
        raise ConfigError(f"--out={out} already holds a report: pass --overwrite true to replace it, or name "
                          "another --out")
    generator = load_generator(ckpt, "--ckpt")
    data = build_datamodule(config)
    generator.check_data(data.shapes, f"--config {config} (data.init_args.data_dir={data.data_dir})")
    model, sampling = generator.model.eval(), generator.sampling
    F, K, shift = data.num_frames, sampling.context_frames, sampling.shift
    steps = steps or sampling.steps
    streams = not model.cfg.bidirectional  # stage 0 samples whole clips: no stream to drift
    window = window_frames or F
    if streams and horizon * F - K < window:
        raise ConfigError(f"--horizon {horizon}: a drift stream of {horizon} x {F} frames after {K} real context "
                          f"frames holds no full {window}-frame window; give --horizon {-(-(window + K) // F)} or more")
    features = make_extractor(extractor, None if i3d_path is None else str(i3d_path), flag="--i3d_path")
    data.setup("validate")
    batches = first_clips(data.val_dataloader(), num_clips)
    with torch.no_grad():
        values, protocol = generated_vs_real(lambda batch, i: sample_clips(model, batch, K, steps, shift, seed=i),
                                             batches, data.codec, features, num_clips, data.data_dir, cache_dir)
    drift = transfer = None
    if streams:
        drift = stream_drift(model, data.data_dir, batches[0], horizon, window_frames, features, drift_clips, steps,
                             shift, K, seed)
        transfer = validation_transfer(model, data.data_dir, drift_clips, F, steps, shift, seed,
                                       min(K, F - 1))  # toy world: why objects fade
    result = {"checkpoint": str(ckpt), "config": str(config), "model": generator.stage or "plain backbone",
              "global_step": generator.global_step, "steps_per_frame": steps,
              "fd": {"values": values, "protocol": {**protocol, **sampling_protocol(model, steps, K, generator.weights
                                                                                   == "ema")}},
              "horizon": horizon, "drift_clips": drift_clips,
              "drift_frames": drift.generated.shape[1] if drift else None,
              "drift": drift.report.to_dict() if drift else None,
              "drift_floor": drift.floor.to_dict() if drift and drift.floor else None, "transfer": transfer,
              "drift_compared": {k: v.to_dict() for k, v in drift.compared.items()} if drift and drift.compared
              else None}
    print(write_report(out, result, drift))
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
    return 0


def main(argv: list[str]) -> int:
    return run_function(evaluate, argv, "eval")
