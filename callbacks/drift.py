"""`LongHorizonDriftCallback`: stream far past the training clip length and log how quality changes with time.

Notation: B clips, T = M x F frames, S pixel size, w frames per window.

On the toy world the streams start from real validation scenes and are driven by the scripted policy that made
those clips, continued; the toy world re-renders the truth for the same actions, so every window also gets the
pixel error against the truth and the agent's position error. The Fréchet reference is the truth of *other*
validation scenes under their own actions (independent real video at the same times), so ground truth streamed
through the same code scores a flat curve. On other data the streams start from validation clips, their actions
played forward and back past the clip's end, and the reference is the real clips (their first window).
Metrics: `lightning_aapt.metrics.drift`.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image, ImageDraw

from callbacks.base import EveryNValidations
from datamodules.shards import read_manifest
from lightning_aapt.adversarial.rollout import extend_controls
from lightning_aapt.codecs import codec_from_manifest
from lightning_aapt.files import write_atomic
from lightning_aapt.inference import StreamingGenerator
from lightning_aapt.metrics.drift import DriftReport, long_horizon_drift
from lightning_aapt.metrics.extractors import make_extractor, metric_name

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194)]


def plot_curves(report: DriftReport, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """An (H, W, 3) uint8 line plot of every curve divided by its first window, on a log2 axis, against time
    (seconds when the frame rate is known, else frames); the grey line marks 1x (no drift)."""
    width, height = size
    left, right, top, bottom = 48, 180, 16, 32
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    scale = report.fps or 1.0
    xs = [(s + report.window_frames / 2) / scale for s in report.starts]  # window centres
    curves = {k: [float(np.log2(max(v / c[0], 1e-3))) for v in c] for k, c in report.curves.items() if c[0] > 0}
    y_lo = min([-1.0, *(min(c) for c in curves.values())])
    y_hi = max([1.0, *(max(c) for c in curves.values())])
    x_max = max(xs[-1], 1e-9)

    def point(x: float, y: float) -> tuple[float, float]:
        return (left + (width - left - right) * x / x_max,
                height - bottom - (height - top - bottom) * (y - y_lo) / (y_hi - y_lo))

    draw.line([point(0, y_lo), point(x_max, y_lo)], fill="black")
    draw.line([point(0, y_lo), point(0, y_hi)], fill="black")
    draw.line([point(0, 0), point(x_max, 0)], fill=(180, 180, 180))
    for value in (y_lo, 0.0, y_hi):
        draw.text((4, point(0, value)[1] - 6), f"{2 ** value:.3g}x", fill="black")
    draw.text((left, height - bottom + 8), f"time 0 .. {x_max:.1f} {'s' if report.fps else 'frames'} "
              "(window centres); metric / first window, log scale", fill="black")
    for i, (name, values) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        draw.line([point(x, y) for x, y in zip(xs, values, strict=True)], fill=colour, width=2)
        draw.text((width - right + 8, top + 14 * i), f"{name} {2 ** values[-1]:.3g}x", fill=colour)
    return np.asarray(image)


@torch.no_grad()
def drift_of_module(module: L.LightningModule, data_dir: str | Path, batch, horizon: int, window: int | None,
                    extractor, num_clips: int, steps: int | None = None, seed: int = 0) -> tuple[DriftReport, dict]:
    """Stream `num_clips` clips for `horizon` x the clip length with the module's sampling (EMA) weights.

    Returns the report and {"generated", "truth", "floor"}: videos (B, T, 3, S, S) for logging, and on the toy
    world the same metrics for the re-rendered truth itself (what a perfect generator scores; else None).
    """
    manifest = read_manifest(data_dir)
    codec = codec_from_manifest(manifest)
    model = module.sampling_model
    steps = steps or getattr(module, "sample_steps", 1)
    shift = module.timestep_cfg.shift
    context = module.context_frames
    clip_frames = batch.latents.shape[1]
    frames, window = horizon * clip_frames, window or clip_frames
    name = metric_name(extractor) if extractor is not None else "fd"
    if "toy_world" in manifest:
        from datamodules.toy_world import clip_seeds, spec_from_manifest
        from lightning_aapt.inference.toy_eval import policy_actions, score_toy_video, stream_toy_clips, true_videos

        toy = spec_from_manifest(data_dir)
        seeds = [clip_seeds(toy, "val", i) for i in range(2 * num_clips)]
        actions = policy_actions([a for _, a in seeds], frames, toy.persistence)  # (2B, T, 2)
        stream = stream_toy_clips(model, codec, toy.text_encoder(), toy.world,
                                  [s for s, _ in seeds[:num_clips]], actions[:num_clips], steps=steps, shift=shift,
                                  seed=seed, context_frames=context)
        reference = true_videos([s for s, _ in seeds[num_clips:]], actions[num_clips:], toy.world)  # (B, T, 3, S, S)
        real_latents = codec.encode(reference)
        fps = manifest.get("fps")
        report = score_toy_video(stream.generated, stream, window, extractor, reference, stream.latents, real_latents,
                                 fps)
        floor = score_toy_video(stream.truth, stream, window, extractor, reference, codec.encode(stream.truth),
                                real_latents, fps)
        return report, {"generated": stream.generated, "truth": stream.truth, "floor": floor}
    gen = StreamingGenerator(model, steps=steps, shift=shift, seed=seed)
    batch_latents = batch.latents[:num_clips]
    controls = None if batch.controls is None else extend_controls(batch.controls[:num_clips], frames)
    gen.reset(batch.text[:num_clips], context=batch_latents[:, :context],
              context_controls=None if controls is None else controls[:, :context])
    later = None if controls is None else controls[:, context:]
    latents = torch.cat([batch_latents[:, :context], gen.generate(frames - context, later)], dim=1).float().cpu()
    generated = codec.decode(latents)
    real = codec.decode(batch_latents.float().cpu())
    report = long_horizon_drift(generated, real, window, extractor, name, latents, batch_latents.float().cpu(),
                                fps=manifest.get("fps"), first=context)
    return report, {"generated": generated, "truth": None, "floor": None}


class LongHorizonDriftCallback(EveryNValidations):
    """Every `every_n_validations` validations (global rank 0), stream `horizon` x the clip length and log
    per metric `val/drift/<metric>_ratio` (last / first window) and `val/drift/<metric>_last`, and
    `val/drift_ratio` (the Fréchet curve's ratio; the truth error's when no extractor is set). The curves go to
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
    """

    def __init__(self, every_n_validations: int = 1, horizon: int = 10, window_frames: int | None = None,
                 num_clips: int = 8, extractor: str = "rand3d", i3d_path: str | None = None,
                 steps: int | None = None) -> None:
        super().__init__(every_n_validations)
        self.horizon, self.window_frames = horizon, window_frames
        self.num_clips, self.steps = num_clips, steps
        self.extractor = None if extractor == "none" else make_extractor(extractor, i3d_path,
                                                                          flag="LongHorizonDriftCallback.i3d_path")

    def setup(self, trainer, module, stage: str) -> None:
        if module.sampling_model.cfg.bidirectional:
            raise ValueError("LongHorizonDriftCallback streams frame by frame: it needs a causal stage (backbone "
                             "bidirectional: false); remove it from a stage-0 config")

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule, batch) -> None:
        report, _ = drift_of_module(module, trainer.datamodule.data_dir, batch, self.horizon,
                                    self.window_frames, self.extractor, self.num_clips, self.steps)
        step = trainer.global_step
        for name, ratio in report.ratios().items():
            module.log(f"val/drift/{name}_ratio", ratio, rank_zero_only=True)
            module.log(f"val/drift/{name}_last", report.curves[name][-1], rank_zero_only=True)
        main = next((n for n in report.curves if n.startswith(("fd", "fvd"))), "pixel_mse_truth")
        if main in report.curves:
            module.log("val/drift_ratio", report.ratio(main), rank_zero_only=True)
        if trainer.log_dir:
            path = Path(trainer.log_dir) / "drift" / f"step{step:06d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(report.to_dict(), indent=2).encode())
        writer = getattr(trainer.logger, "experiment", None)
        if hasattr(writer, "add_image"):
            writer.add_image("val/drift_plot", plot_curves(report), step, dataformats="HWC")
            for name, values in report.curves.items():
                for start, value in zip(report.starts, values, strict=True):  # x axis: the window's first frame
                    writer.add_scalar(f"drift_curves/{name}/step{step:06d}", value, start)
