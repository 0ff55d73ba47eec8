"""Long-horizon drift of a generator: stream far past the training clip length and score every window.

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

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lightning_aapt.adversarial.rollout import extend_controls
from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.data import VideoBatch, read_manifest
from lightning_aapt.evaluation.long_streams import ToyLongStreams
from lightning_aapt.inference import stream_after_context
from lightning_aapt.metrics.drift import DriftReport, long_horizon_drift
from lightning_aapt.metrics.extractors import metric_name


@dataclass
class Drift:
    """The drift of a set of streams, and the videos it was measured on (for logging)."""

    report: DriftReport
    generated: Tensor  # (B, T, 3, S, S), decoded, not clamped
    truth: Tensor | None  # (B, T, 3, S, S): the toy world's re-rendered truth (else None)
    floor: DriftReport | None  # the truth itself scored the same way: what a perfect generator scores (toy world)
    compared: dict[str, DriftReport] | None = None  # the floors and the truth itself (toy world)


@torch.no_grad()
def stream_drift(model: CausalVideoDiT, data_dir: str | Path, batch: VideoBatch, horizon: int, window: int | None,
                 extractor, num_clips: int, steps: int = 1, shift: float = 1.0, context_frames: int = 1,
                 seed: int = 0) -> Drift:
    """Stream `num_clips` clips for `horizon` x the clip length, each after its first `context_frames` real
    frames, `steps` Euler steps per frame on the time grid shifted by `shift`, and score windows of `window`
    frames (default: the clip length)."""
    manifest = read_manifest(data_dir)
    K, clip_frames = context_frames, batch.latents.shape[1]
    frames, window = horizon * clip_frames, window or clip_frames
    if manifest.toy_world is not None:  # the truth re-rendered for the streamed actions; other scenes, the reference
        streams = ToyLongStreams(data_dir, num_clips, frames, K, window, extractor, manifest.fps)
        stream = streams.stream(model, steps, shift, seed=seed)
        real_latents = streams.codec.encode(streams.reference)
        report = streams.score(stream.generated, stream, stream.latents, real_latents)
        compared = streams.compared_with(stream, real_latents)
        return Drift(report, stream.generated, stream.truth, compared["truth"], compared)
    # other data: the clips' actions played forward and back; the real clips as the reference
    codec = manifest.normalized_codec()
    context, text = batch.latents[:num_clips, :K], batch.text[:num_clips]
    controls = extend_controls(batch.controls[:num_clips], frames) if batch.controls is not None else None
    reference_latents = batch.latents[:num_clips].float().cpu()
    reference = codec.decode(reference_latents)
    param = next(model.parameters())
    controls = None if controls is None or not model.cfg.control_dim else controls.to(param)  # (B, T, A)
    streamed = stream_after_context(model, text.to(param), context.to(param), controls, frames, steps, shift,
                                    seed)  # (B, T-K, C, H, W)
    latents = torch.cat([context.to(streamed), streamed], dim=1).float().cpu()  # (B, T, C, H, W)
    generated = codec.decode(latents)
    report = long_horizon_drift(generated, reference, window, extractor, metric_name(extractor) if extractor else "fd",
                                latents, reference_latents, fps=manifest.fps, first=K)
    return Drift(report, generated, None, None)
