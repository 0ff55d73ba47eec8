"""Negative clips for the discriminator: real clips whose most detailed region fades out from some frame on.

Notation: B batch, F frames, C latent channels, H/W latent height/width.

A discriminator trained only on real clips against a generator's rollouts learns whatever cue separates them most
cheaply. When the generator's frames carry spurious detail, "less detail is more real" is such a cue, and it is
the wrong lesson: a generator then gains by fading objects. Negative data augmentation (Sinha et al., "Negative
Data Augmentation", ICLR 2021) adds samples known to be fake, made from real ones by the change the model must
not make, so the discriminator is taught that change directly. Here that change is an object vanishing: from a
chosen frame on, the region of the latent grid with the most detail (energy above its local mean) is replaced by
that local mean, as a fading generator replaces a sprite by its surroundings. Which detailed region is drawn at
random, in proportion to its detail amplitude among the regions with at least a quarter of the most detailed one's,
so that small, dim objects are faded too, not only the most contrasted one. It needs no labels, masks or world
model: any latent video works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def local_mean(frames: Tensor, size: int) -> Tensor:
    """Box mean of (N, C, H, W) latents over a (2 size + 1)^2 window, edges averaged over what lies inside."""
    return F.avg_pool2d(frames, 2 * size + 1, stride=1, padding=size, count_include_pad=False)


def fade_out_detail(video: Tensor, from_frame: Tensor, size: int = 2, choice: Tensor | None = None) -> Tensor:
    """`video` (B, F, C, H, W) with, in each clip b from frame `from_frame[b]` on, a size x size latent window
    replaced by its local mean (`local_mean` over a 2 size + 1 window). The window: drawn by `choice` (B,) in
    [0, 1) in proportion to its detail amplitude in that frame, among windows with at least 0.25 of the clip's
    most detailed one's (None: the most detailed window)."""
    B, Fr, C, H, W = video.shape
    if not 1 <= size <= min(H, W):
        raise ValueError(f"fade_out_detail: size {size} must lie in 1..{min(H, W)} (the latent grid {H} x {W})")
    x = video.float()
    smooth = local_mean(x.flatten(0, 1), size).view(B, Fr, C, H, W)
    clips = torch.arange(B, device=video.device)
    # (B, 1, H, W): detail in each clip's first faded frame
    detail = (x[clips, from_frame] - smooth[clips, from_frame]).pow(2).sum(1, keepdim=True)
    window = F.avg_pool2d(detail, size, stride=1)  # (B, 1, H-size+1, W-size+1): detail of each window
    amplitude = window.flatten(1).sqrt()  # (B, windows)
    if choice is None:
        best = amplitude.argmax(1)  # (B,)
    else:
        weight = torch.where(amplitude >= 0.25 * amplitude.amax(1, keepdim=True), amplitude, 0.0)
        cdf = weight.cumsum(1) / weight.sum(1, keepdim=True).clamp_min(1e-12)  # (B, windows)
        best = torch.searchsorted(cdf, choice.to(cdf)[:, None].clamp(0, 1 - 1e-6), right=True).squeeze(1).clamp_max(
            cdf.shape[1] - 1)  # (B,)
    top, left = best // window.shape[-1], best % window.shape[-1]
    rows = torch.arange(H, device=video.device)
    cols = torch.arange(W, device=video.device)
    inside = (((rows[None] >= top[:, None]) & (rows[None] < top[:, None] + size))[:, :, None]
              & ((cols[None] >= left[:, None]) & (cols[None] < left[:, None] + size))[:, None, :])  # (B, H, W)
    later = torch.arange(Fr, device=video.device)[None] >= from_frame[:, None]  # (B, F)
    mask = (later[:, :, None, None] & inside[:, None]).unsqueeze(2)  # (B, F, 1, H, W)
    return torch.where(mask, smooth, x).to(video.dtype)
