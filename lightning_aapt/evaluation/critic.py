"""What stage 3's discriminator can see: real toy-world clips against the same clips with one thing wrong.

Notation: B clips, T frames, C latent channels, H/W latent height/width, S pixel size.

A generator learns only what its discriminator tells apart. Each probe changes the real clips from frame K on in
one way a stream goes wrong, and asks the discriminator to judge both at its own noise levels with the same noise,
text and actions: the per-frame **margin** logit(real) - logit(changed) over frames K.. (the generator's loss
moves with it) and **P(real higher)**, the share of frames the real one wins. Probes:
- `objects_painted_out`: the sprites removed (what fading streams do);
- `agent_painted_out`: the agent removed;
- `block_texture`: a 4x4-pixel block colour texture (std `texture_std` per channel; the stream's background drift).
A discriminator that carries signal about objects separates the first by a clear margin (the issue's gate: P > 0.9
and a margin of at least 0.5 logit, before the generator trains); one held flat scores margins near 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lightning_aapt.data import read_manifest
from lightning_aapt.diffusion import shift_time
from lightning_aapt.evaluation.toy import object_truth, rendered_episodes, validation_clips
from lightning_aapt.world.dataset import ToyWorldSpec

PROBES = ("objects_painted_out", "agent_painted_out", "block_texture")


def probe_videos(truth: Tensor, episodes: list, context_frames: int, texture_std: float = 0.04,
                 block: int = 4, seed: int = 0) -> dict[str, Tensor]:
    """The real videos (B, T, 3, S, S) changed from frame K on in each of `PROBES`' ways."""
    K = context_frames
    objects = object_truth(episodes, truth)
    agentless = torch.from_numpy(np.stack([np.stack([lay.image(without=(0,)) for lay in e.layers])
                                           for e in episodes])).permute(0, 1, 4, 2, 3).float() / 255
    B, T, _, S, _ = truth.shape
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randn(B, T, 3, S // block, S // block, generator=g) * texture_std  # (B, T, 3, S/b, S/b)
    textured = (truth + blocks.repeat_interleave(block, -1).repeat_interleave(block, -2)).clamp(0, 1)
    videos = {}
    for name, changed in (("objects_painted_out", objects.beneath), ("agent_painted_out", agentless),
                          ("block_texture", textured)):
        video = truth.clone()
        video[:, K:] = changed[:, K:]
        videos[name] = video
    return videos


@torch.no_grad()
def critic_margins(discriminator: torch.nn.Module, data_dir: str | Path, clips: int, frames: int,
                   times: tuple[float, ...] = (0.0, 0.2, 0.5), context_frames: int = 2, seed: int = 0,
                   timestep_shift: float | None = None) -> dict[str, dict[str, float]] | None:
    """Margins and P(real higher) of `discriminator` on the first `clips` validation scenes of a toy-world dataset,
    `frames` long, for each probe at each noise level in `times` ("t=<t>") and, with `timestep_shift` (the
    discriminator's), over its training distribution (t ~ U(0, 1) shifted, "t~train"). Returns
    {"<probe>": {"margin@t=0": ..., "p_real_higher@t=0": ...}}, or None for a dataset the world cannot re-render."""
    manifest = read_manifest(data_dir)
    if manifest.toy_world is None:
        return None
    spec = ToyWorldSpec.from_manifest(manifest)
    codec = manifest.normalized_codec()
    scenes, actions = validation_clips(spec, clips, frames)  # actions (B, T, 2)
    episodes, truth, _ = rendered_episodes(scenes, actions, spec.world, context_frames)
    param = next(discriminator.parameters())
    text = spec.text_encoder().encode([e.caption for e in episodes]).to(param)
    controls = actions.to(param) if discriminator.backbone.cfg.control_dim else None
    real = codec.encode(truth).to(param)  # (B, T, C, H, W)
    probes = probe_videos(truth, episodes, context_frames, seed=seed)
    changed = {name: codec.encode(video).to(param) for name, video in probes.items()}  # (B, T, C, H, W) each
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(real.shape, generator=g).to(param)
    levels = {f"t={t:g}": torch.full((clips,), t) for t in times}
    if timestep_shift is not None:
        levels["t~train"] = shift_time(torch.rand(clips, generator=g), timestep_shift)
    result: dict[str, dict[str, float]] = {name: {} for name in changed}
    for label, t in levels.items():
        t = t.to(param)
        real_logits = discriminator(real, t, noise, text, controls)[:, context_frames:]  # (B, T-K)
        for name, video in changed.items():
            gap = real_logits - discriminator(video, t, noise, text, controls)[:, context_frames:]
            result[name][f"margin@{label}"] = float(gap.mean())
            result[name][f"p_real_higher@{label}"] = float((gap > 0).float().mean())
    return result
