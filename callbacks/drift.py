"""`LongHorizonDriftCallback`: every N validations, stream far past the training clip length and log how quality
changes with time (`lightning_aapt.evaluation.drift`: what is streamed and scored; this file: when, and where
the numbers go)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L

from callbacks.base import EveryNValidations
from lightning_aapt.evaluation.drift import stream_drift
from lightning_aapt.evaluation.plots import drift_figure
from lightning_aapt.evaluation.transfer import transfer_metrics, validation_transfer
from lightning_aapt.files import write_atomic
from lightning_aapt.metrics.extractors import make_extractor


class LongHorizonDriftCallback(EveryNValidations):
    """Every `every_n_validations` validations (global rank 0), stream `horizon` x the clip length and log
    per metric `val/drift/<metric>_ratio` (last / first window) and `val/drift/<metric>_last`, and
    `val/drift_ratio` (the Fréchet curve's ratio; the truth error's when no extractor is set). On the toy world it
    also logs the objects' lifetimes over the stream (`val/drift/median_lifetime`, `val/drift/alive_after_<k>`)
    and, with `transfer`, why objects fade: the one-step amplitude transfer and teacher-forced error against
    copying of objects and agent on the clips (`val/transfer/objects_a_out_1`, `.../objects_error_vs_copy`,
    `lightning_aapt.evaluation.transfer`). The curves go to
    `<log_dir>/drift/step<N>.json`, to TensorBoard as `drift_curves/<metric>/step<N>` (x = the window's first
    frame) and as one image, `val/drift_plot` (every curve relative to its first window, against seconds).

    Args:
        every_n_validations: run after validations n, 2n, ... (sanity checks excluded).
        horizon: stream length as a multiple of the validation clip length (AAPT: minutes from seconds).
        window_frames: frames per window (default: the clip length; one second of toy video is 8 frames).
        num_clips: streams per evaluation.
        extractor: "rand3d", "i3d" (needs `i3d_path`; windows must be >= 9 frames) or "none".
        i3d_path: local I3D weights file.
        steps: sampler steps per frame (default: the module's `sample_steps`).
        transfer: also measure the one-step amplitude transfer (toy world; a few seconds on a CPU).
    """

    def __init__(self, every_n_validations: int = 1, horizon: int = 10, window_frames: int | None = None,
                 num_clips: int = 8, extractor: str = "rand3d", i3d_path: str | None = None,
                 steps: int | None = None, transfer: bool = True) -> None:
        super().__init__(every_n_validations)
        self.horizon, self.window_frames = horizon, window_frames
        self.num_clips, self.steps, self.transfer = num_clips, steps, transfer
        self.extractor = None if extractor == "none" else make_extractor(extractor, i3d_path,
                                                                          flag="LongHorizonDriftCallback.i3d_path")

    def setup(self, trainer, module, stage: str) -> None:
        if module.sampling_model.cfg.bidirectional:
            raise ValueError("LongHorizonDriftCallback streams frame by frame: it needs a causal stage (backbone "
                             "bidirectional: false); remove it from a stage-0 config")

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule, batch) -> None:
        data_dir, steps = trainer.datamodule.data_dir, self.steps or module.sample_steps
        shift = module.timestep_cfg.shift
        report = stream_drift(module.sampling_model, data_dir, batch, self.horizon, self.window_frames,
                              self.extractor, self.num_clips, steps, shift, module.context_frames).report
        step = trainer.global_step
        for name, ratio in report.ratios().items():
            module.log(f"val/drift/{name}_ratio", ratio, rank_zero_only=True)
            module.log(f"val/drift/{name}_last", report.curves[name][-1], rank_zero_only=True)
        for name, value in report.summary.items():
            module.log(f"val/drift/{name}", value, rank_zero_only=True)
        frames = batch.latents.shape[1]
        transfer = validation_transfer(module.sampling_model, data_dir, self.num_clips, frames, steps, shift,
                                       context_frames=min(module.context_frames, frames - 1)) if self.transfer else None
        for name, value in transfer_metrics(transfer or {}).items():
            module.log(f"val/transfer/{name}", value, rank_zero_only=True)
        main = next((n for n in report.curves if n.startswith(("fd", "fvd"))), "pixel_mse_truth")
        if main in report.curves:
            module.log("val/drift_ratio", report.ratio(main), rank_zero_only=True)
        if trainer.log_dir:
            path = Path(trainer.log_dir) / "drift" / f"step{step:06d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(report.to_dict(), indent=2).encode())
        writer = getattr(trainer.logger, "experiment", None)
        if hasattr(writer, "add_figure"):
            writer.add_figure("val/drift_plot", drift_figure(report), step)
            for name, values in report.curves.items():
                for start, value in zip(report.starts, values, strict=True):  # x axis: the window's first frame
                    writer.add_scalar(f"drift_curves/{name}/step{step:06d}", value, start)
