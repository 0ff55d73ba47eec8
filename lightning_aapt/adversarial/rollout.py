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

from lightning_aapt.backbone import CausalVideoDiT, KVCache
from lightning_aapt.inference import StreamingGenerator


@dataclass
class Rollout:
    """A no-grad rollout: frame j of `frames` was generated from `noises[:, j]` and `recycled[:, j]`."""

    frames: Tensor  # (B, R, C, H, W)
    noises: Tensor  # (B, R, C, H, W)
    recycled: Tensor  # (B, R, C, H, W): the frame before each generated one (the given first frame at j = 0)
    controls: Tensor | None  # (B, R, A)
    text: Tensor  # (B, L, Dt)
    snapshots: dict[int, KVCache]  # the cache before frame j, for each requested j


def rollout(model: CausalVideoDiT, first_frame: Tensor, text: Tensor, noises: Tensor,
            controls: Tensor | None = None, snapshot_at: tuple[int, ...] = ()) -> Rollout:
    """Generate R frames after `first_frame` (B, C, H, W), one network evaluation each, without gradients."""
    B, R = noises.shape[:2]
    gen = StreamingGenerator(model, steps=1, inference_mode=False)
    gen.reset(text, first_frame=first_frame)
    frames, snapshots = [], {}
    with torch.no_grad():
        for j in range(R):
            if j in snapshot_at:
                snapshots[j] = gen.cache.snapshot()
            frames.append(gen.step(None if controls is None else controls[:, j], noises[:, j]))
        generated = torch.stack(frames, dim=1)  # (B, R, C, H, W)
        recycled = torch.cat([first_frame[:, None], generated[:, :-1]], dim=1)  # (B, R, C, H, W)
    return Rollout(generated, noises, recycled, controls, gen.text, snapshots)


def regenerate(model: CausalVideoDiT, ro: Rollout, start: int, stop: int, kv_gradients: bool = True) -> Tensor:
    """Frames start..stop-1 of the rollout again, with gradients: (B, stop - start, C, H, W).

    The context before `start` is the rollout's cache snapshot at `start` (detached; None at 0).
    """
    B = ro.noises.shape[0]
    span = slice(start, stop)
    context = None
    if start > 0:
        if start not in ro.snapshots:
            raise KeyError(f"regenerate(start={start}) needs rollout(..., snapshot_at) to include {start}")
        context = ro.snapshots[start].snapshot()  # a copy: the span's own frames are never written into it
    controls = None if ro.controls is None else ro.controls[:, span]
    noises, recycled = ro.noises[:, span], ro.recycled[:, span].detach()
    text = ro.text.clone()  # a new tensor: the text keys/values are recomputed with gradients, not the snapshot's
    if kv_gradients:
        ones = noises.new_ones(B, stop - start)
        v = model(noises, ones, recycled, text, controls, cache=context, cache_write=False)
        return noises - v
    cache = context if context is not None else model.new_cache(B)
    frames = []
    for j in range(stop - start):  # one frame at a time; the cache stores detached keys/values
        c = None if controls is None else controls[:, j : j + 1]
        v = model(noises[:, j : j + 1], noises.new_ones(B, 1), recycled[:, j : j + 1], text, c, cache=cache)
        frames.append(noises[:, j] - v[:, 0])
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
