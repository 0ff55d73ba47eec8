"""Student forcing (AAPT §2.2 (3)): the generator rolls out on its own outputs, exactly as at inference,
then the frames that need gradients are recomputed in one masked forward pass.

Notation: B batch, R rollout frames, S segment frames, C latent channels, H/W latent height/width, A controls.

A no-grad sequential rollout through `StreamingGenerator` (1 NFE, KV cache) makes the frames. Recomputing a
span of them in parallel, fed the same noises and the same detached recycled frames, with the rollout's cache
snapshot as the context before the span, gives the same frames (tested to 1e-5); that pass is where gradients
come from. What carries gradients, following AAPT: recycled input frames never (detached, for stability);
the keys/values of earlier frames inside the span do (`kv_gradients=True`), so a frame's loss reaches the
passes of the frames it attended to; with `kv_gradients=False` each frame is recomputed on its own against a
detached cache, so its gradient comes from its own pass only. Context before the span is always detached:
long-video training hands each segment a detached cache (AAPT App. B), which bounds memory by one segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_aapt.backbone import CausalVideoDiT, KVCache, recycled_frames
from lightning_aapt.diffusion import x0_from_velocity
from lightning_aapt.inference import StreamingGenerator


@dataclass
class Rollout:
    """A no-grad rollout, indexed like the video it makes: video frame f = 0..R-1. Frames 0..K-1 are the given
    context (frame 0 enters through the recycled channels, 1..K-1 are observed through the cache), frames K..R-1 are
    generated, frame f from `noises[:, f]`, `recycled[:, f]` (frame f - 1) and `controls[:, f]`. Frame 0 is never
    made: its noise, recycled frame and controls are not used."""

    video: Tensor  # (B, R, C, H, W): the context, then the generated frames
    noises: Tensor  # (B, R, C, H, W): each frame's noise (a context frame's: what it was observed with)
    recycled: Tensor  # (B, R, C, H, W): the frame before each (zeros before frame 0)
    controls: Tensor | None  # (B, R, A)
    text: Tensor  # (B, L, Dt)
    snapshots: dict[int, KVCache]  # the cache before video frame f was made, for each requested f
    context_frames: int = 1  # K: video frames 0..K-1 were given


def rollout(model: CausalVideoDiT, context: Tensor, text: Tensor, noises: Tensor,
            controls: Tensor | None = None, snapshot_at: tuple[int, ...] = ()) -> Rollout:
    """Continue K real frames `context` (B, K, C, H, W) to a video of R frames, one network evaluation each, without
    gradients: frame 0 enters through the recycled channels, frames 1..K-1 are observed through the cache as at
    inference (`StreamingGenerator.observe`), frames K..R-1 are generated. `noises` and `controls` (B, R, ...) are
    per video frame (frame 0's are not used). `snapshot_at`: generated frames (K <= f < R) before which the cache is
    kept, for `regenerate` to start from."""
    B, R = noises.shape[:2]
    K = context.shape[1]
    if not 1 <= K < R:
        raise ValueError(f"rollout: {K} context frames for a {R}-frame video; need 1 <= K < R")
    if any(not K <= f < R for f in snapshot_at):
        raise ValueError(f"rollout: snapshots {snapshot_at} must be generated frames: not inside the {K} context "
                         f"frames (video frames < {K}) nor past the video's {R}")
    gen = StreamingGenerator(model, steps=1, inference_mode=False)
    gen.reset(text, first_frame=context[:, 0])
    if K > 1:  # frames 1..K-1 with their controls and noises
        gen.observe(context[:, 1:], None if controls is None else controls[:, 1:K], noises[:, 1:K])
    frames, snapshots = list(context.unbind(1)), {}  # video frames 0..K-1: the given context
    with torch.no_grad():
        for f in range(K, R):
            if f in snapshot_at:
                snapshots[f] = gen.cache.snapshot()
            frames.append(gen.step(None if controls is None else controls[:, f], noises[:, f]))
        video = torch.stack(frames, dim=1)  # (B, R, C, H, W)
        recycled = recycled_frames(torch.zeros_like(context[:, 0]), video)  # (B, R, C, H, W): frame f - 1
    return Rollout(video, noises, recycled, controls, gen.text, snapshots, K)


def regenerate(model: CausalVideoDiT, ro: Rollout, first: int, stop: int, kv_gradients: bool = True) -> Tensor:
    """Video frames first..stop-1 of the rollout again, with gradients: (B, stop - first, C, H, W).

    The context before `first` is the rollout's cache snapshot at `first` (detached; none before frame 1). The
    rollout's real context frames (first < K) were given, not generated, and cannot be regenerated.
    """
    if first < ro.context_frames:
        raise ValueError(f"regenerate(first={first}): video frames 0..{ro.context_frames - 1} are the rollout's real "
                         "context frames, given, not generated")
    B = ro.noises.shape[0]
    span = slice(first, stop)
    before = None  # the cache of the frames before the span (frame 0 enters through frame 1's recycled channels)
    if first > 1:
        if first not in ro.snapshots:
            raise KeyError(f"regenerate(first={first}) needs rollout(..., snapshot_at) to include {first}")
        before = ro.snapshots[first].snapshot()  # a copy: the span's own frames are never written into it
    controls = None if ro.controls is None else ro.controls[:, span]
    noises, recycled = ro.noises[:, span], ro.recycled[:, span].detach()
    if kv_gradients:
        ones = noises.new_ones(B, stop - first)
        v = model(noises, ones, recycled, ro.text, controls, cache=before, cache_write=False)  # text K/V with grad
        return x0_from_velocity(noises, v, ones)  # one step from t = 1: noise - v
    cache = before if before is not None else model.new_cache(B)
    frames, ones = [], noises.new_ones(B, 1)
    for j in range(stop - first):  # one frame at a time; the cache stores detached keys/values
        c = None if controls is None else controls[:, j : j + 1]
        v = model(noises[:, j : j + 1], ones, recycled[:, j : j + 1], ro.text, c, cache=cache)  # (B, 1, C, H, W)
        frames.append(x0_from_velocity(noises[:, j : j + 1], v, ones)[:, 0])
    return torch.stack(frames, dim=1)


def extend_controls(controls: Tensor | None, frames: int) -> Tensor | None:
    """Controls (B, F, A) played forward and back (ping-pong) to cover `frames` > F frames."""
    if controls is None or controls.shape[1] >= frames:
        return None if controls is None else controls[:, :frames]
    F = controls.shape[1]
    period = max(2 * F - 2, 1)
    index = torch.arange(frames, device=controls.device) % period
    index = torch.where(index < F, index, period - index)
    return controls[:, index]


def rollout_lengths(clip_frames: int, rollout_frames: int | None, segment_frames: int | None) -> tuple[int, int]:
    """(S, R) for clips of `clip_frames` frames: frames per judged segment (default: the clip) and frames of the
    rollout, its first real frame included (default: the clip; at least one segment). The one rule of stage 3 and
    of `plan`."""
    S = segment_frames or clip_frames
    return S, max(rollout_frames or clip_frames, S)
