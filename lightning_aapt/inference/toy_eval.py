"""Streaming a generator next to the toy world's re-rendered ground truth.

Notation: B clips, T frames, C latent channels, H/W latent height/width, S pixel size.

The toy world can render the truth for any action sequence, so a stream far longer than the training clips
can be scored frame by frame: start from a real first frame, drive the agent with the scripted policy that
made the clip (extended), and compare each generated frame with the re-rendered one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.codecs import LatentCodec
from lightning_aapt.inference.streaming import StreamingGenerator
from lightning_aapt.text import TextEncoder
from lightning_aapt.world import WorldConfig, scripted_actions, simulate


@dataclass
class ToyStream:
    """Generated and true videos of a set of toy clips, and the measured time per frame."""

    generated: torch.Tensor  # (B, T, 3, S, S) in [0, 1], frame 0 = the given real first frame
    truth: torch.Tensor  # (B, T, 3, S, S)
    latents: torch.Tensor  # (B, T, C, H, W) generated latents, frame 0 the encoded real first frame
    agent_pos: torch.Tensor  # (B, T, 2) true agent positions, pixels (x, y)
    seconds_per_frame: float  # network time per generated frame (all clips together), decode excluded
    cache_bytes: tuple[int, int]  # KV-cache storage once the window is full, and at the end of the stream

    def side_by_side(self, clip: int = 0) -> torch.Tensor:
        """(T, 3, S, 2S): the generated video left, the truth right."""
        return torch.cat([self.generated[clip], self.truth[clip]], dim=-1)

    def frame_error(self) -> torch.Tensor:
        """Mean squared pixel error per frame (T,), over clips, pixels and colours."""
        return (self.generated - self.truth).pow(2).mean(dim=(0, 2, 3, 4))


def policy_actions(action_seeds: list[int], frames: int, persistence: float = 0.85) -> torch.Tensor:
    """The scripted policy's actions (B, T, 2) for each seed: a stored clip's actions, continued."""
    return torch.from_numpy(np.stack([scripted_actions(a, frames, persistence) for a in action_seeds]))


def stream_toy_clips(model: CausalVideoDiT, codec: LatentCodec, encoder: TextEncoder, world: WorldConfig,
                     scene_seeds: list[int], actions: torch.Tensor, steps: int = 1, shift: float = 1.0,
                     seed: int = 0, progress: bool = False) -> ToyStream:
    """Stream T - 1 frames after the true first frame of each scene, driven by `actions` (B, T, 2)."""
    frames = actions.shape[1]
    episodes = [simulate(s, a.numpy(), world) for s, a in zip(scene_seeds, actions, strict=True)]
    truth = torch.from_numpy(np.stack([e.frames for e in episodes])).permute(0, 1, 4, 2, 3).float() / 255
    param = next(model.parameters())
    latents0 = codec.encode(truth[:, :1]).to(param)  # (B, 1, C, H, W)
    text = encoder.encode([e.caption for e in episodes]).to(param)
    controls = actions[:, 1:].to(param) if model.cfg.control_dim else None  # (B, T-1, 2)
    gen = StreamingGenerator(model, steps=steps, shift=shift, seed=seed)
    gen.reset(text, first_frame=latents0[:, 0])
    gen.generate(1, None if controls is None else controls[:, :1])  # warm-up, not timed
    gen.reset(text, first_frame=latents0[:, 0])
    full = min(frames - 1, (model.cfg.window_frames or 0) + model.cfg.sink_frames + 1)  # window full after this
    start = time.perf_counter()
    head = gen.generate(full, None if controls is None else controls[:, :full])
    filled = gen.cache.memory_bytes()
    tail = gen.generate(frames - 1 - full, None if controls is None else controls[:, full:], progress=progress)
    seconds = (time.perf_counter() - start) / (frames - 1)
    latents = torch.cat([head, tail], dim=1)  # (B, T-1, C, H, W)
    if not torch.isfinite(latents).all():
        raise FloatingPointError("the generator produced non-finite latents")
    latents = torch.cat([latents0, latents], dim=1).float().cpu()  # (B, T, C, H, W)
    generated = torch.cat([truth[:, :1], codec.decode(latents[:, 1:])], dim=1)
    agent_pos = torch.from_numpy(np.stack([e.agent_pos for e in episodes])).float()
    return ToyStream(generated, truth, latents, agent_pos, seconds, (filled, gen.cache.memory_bytes()))
