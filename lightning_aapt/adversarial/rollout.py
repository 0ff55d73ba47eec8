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
    """A no-grad rollout. Position j holds video frame j + 1: the real context frames 1..K-1 at positions
    0..K-2 (observed, not generated), then frame j + 1 generated from `noises[:, j]` and `recycled[:, j]`."""

    frames: Tensor  # (B, R, C, H, W)
    noises: Tensor  # (B, R, C, H, W): at a context position, the noise its observed frame was noised with
    recycled: Tensor  # (B, R, C, H, W): the frame before each position's (the given first frame at j = 0)
    controls: Tensor | None  # (B, R, A)
    text: Tensor  # (B, L, Dt)
    snapshots: dict[int, KVCache]  # the cache before position j, for each requested j
    context_frames: int = 1  # K: video frames 0..K-1 were given


def rollout(model: CausalVideoDiT, context: Tensor, text: Tensor, noises: Tensor,
            controls: Tensor | None = None, snapshot_at: tuple[int, ...] = ()) -> Rollout:
    """Continue K real frames `context` (B, K, C, H, W) to video frames K..R, one network evaluation each, without
    gradients: frame 0 enters through the recycled channels, frames 1..K-1 are observed through the cache as at
    inference (`StreamingGenerator.observe`), positions K-1..R-1 are generated. `noises` and
    `controls` (B, R, ...) are per position (video frames 1..R). Snapshots can be taken before generated
    positions only (j >= K - 1)."""
    B, R = noises.shape[:2]
    K = context.shape[1]
    if not 1 <= K <= R:
        raise ValueError(f"rollout: {K} context frames for {R} positions; need 1 <= K <= R")
    if any(j < K - 1 for j in snapshot_at):
        raise ValueError(f"rollout: snapshots {snapshot_at} fall inside the {K} context frames (positions < {K - 1})")
    gen = StreamingGenerator(model, steps=1, inference_mode=False)
    gen.reset(text, first_frame=context[:, 0])
    if K > 1:  # frames 1..K-1 with their controls and noises (position j holds frame j + 1)
        gen.observe(context[:, 1:], None if controls is None else controls[:, : K - 1], noises[:, : K - 1])
    frames, snapshots = list(context[:, 1:].unbind(1)), {}  # positions 0..K-2: the observed real frames
    with torch.no_grad():
        for j in range(K - 1, R):
            if j in snapshot_at:
                snapshots[j] = gen.cache.snapshot()
            frames.append(gen.step(None if controls is None else controls[:, j], noises[:, j]))
        video = torch.stack(frames, dim=1)  # (B, R, C, H, W)
        recycled = recycled_frames(context[:, 0], video)  # (B, R, C, H, W)
    return Rollout(video, noises, recycled, controls, gen.text, snapshots, K)


def regenerate(model: CausalVideoDiT, ro: Rollout, start: int, stop: int, kv_gradients: bool = True) -> Tensor:
    """Frames start..stop-1 of the rollout again, with gradients: (B, stop - start, C, H, W).

    The context before `start` is the rollout's cache snapshot at `start` (detached; None at 0). Positions of the
    rollout's real context frames (start < K - 1) were observed, not generated, and cannot be regenerated.
    """
    if start < ro.context_frames - 1:
        raise ValueError(f"regenerate(start={start}): positions 0..{ro.context_frames - 2} hold the rollout's real "
                         "context frames, observed, not generated")
    B = ro.noises.shape[0]
    span = slice(start, stop)
    before = None  # the cache of the frames before the span
    if start > 0:
        if start not in ro.snapshots:
            raise KeyError(f"regenerate(start={start}) needs rollout(..., snapshot_at) to include {start}")
        before = ro.snapshots[start].snapshot()  # a copy: the span's own frames are never written into it
    controls = None if ro.controls is None else ro.controls[:, span]
    noises, recycled = ro.noises[:, span], ro.recycled[:, span].detach()
    if kv_gradients:
        ones = noises.new_ones(B, stop - start)
        v = model(noises, ones, recycled, ro.text, controls, cache=before, cache_write=False)  # text K/V with grad
        return x0_from_velocity(noises, v, ones)  # one step from t = 1: noise - v
    cache = before if before is not None else model.new_cache(B)
    frames, ones = [], noises.new_ones(B, 1)
    for j in range(stop - start):  # one frame at a time; the cache stores detached keys/values
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
