"""Streaming a generator next to the toy world's re-rendered ground truth.

Notation: B clips, T frames, C latent channels, H/W latent height/width, S pixel size.

The toy world can render the truth for any action sequence, so a stream far longer than the training clips
can be scored frame by frame: start from K real context frames, drive the agent with the scripted policy that
made the clip (extended), and compare each generated frame with the re-rendered one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.codecs import LatentCodec
from lightning_aapt.codecs.base import video_frames
from lightning_aapt.inference.streaming import StreamingGenerator
from lightning_aapt.metrics.drift import DriftReport, long_horizon_drift
from lightning_aapt.metrics.extractors import metric_name
from lightning_aapt.metrics.objects import ObjectTruth
from lightning_aapt.text import TextEncoder
from lightning_aapt.world import WorldConfig, scripted_actions, simulate
from lightning_aapt.world.dataset import ToyWorldSpec, clip_seeds


@dataclass
class ToyStream:
    """Generated and true videos of a set of toy clips, and the measured time per frame."""

    generated: torch.Tensor  # (B, T, 3, S, S) in [0, 1], frames 0..K-1 = the given real context
    truth: torch.Tensor  # (B, T, 3, S, S)
    latents: torch.Tensor  # (B, T, C, H, W) generated latents, frames 0..K-1 the encoded real context
    agent_pos: torch.Tensor  # (B, T, 2) true agent positions, pixels (x, y)
    seconds_per_frame: float  # network time per generated frame (all clips together), decode excluded
    cache_bytes: tuple[int, int]  # KV-cache storage once the window is full, and at the end of the stream
    context_frames: int = 1  # K real frames the stream started from
    objects: ObjectTruth | None = None  # the sprites' truth in every frame

    def side_by_side(self, clip: int = 0) -> torch.Tensor:
        """(T, 3, S, 2S): the generated video left, the truth right."""
        return torch.cat([self.generated[clip], self.truth[clip]], dim=-1)

    def frame_error(self) -> torch.Tensor:
        """Mean squared pixel error per frame (T,), over clips, pixels and colours."""
        return (self.generated - self.truth).pow(2).mean(dim=(0, 2, 3, 4))


def as_video(frames: list[np.ndarray]) -> torch.Tensor:
    """Rendered frames, one (T, S, S, 3) uint8 array per clip -> a video (B, T, 3, S, S) in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).permute(0, 1, 4, 2, 3).float() / 255


def true_videos(scene_seeds: list[int], actions: torch.Tensor, world: WorldConfig, **simulate_args) -> torch.Tensor:
    """The world's rendering (B, T, 3, S, S) of each scene under its actions (B, T, 2) (`simulate` arguments)."""
    return as_video([simulate(s, a.numpy(), world, **simulate_args).frames
                     for s, a in zip(scene_seeds, actions, strict=True)])


def policy_actions(action_seeds: list[int], frames: int, persistence: float = 0.85) -> torch.Tensor:
    """The scripted policy's actions (B, T, 2) for each seed: a stored clip's actions, continued."""
    return torch.from_numpy(np.stack([scripted_actions(a, frames, persistence) for a in action_seeds]))


def rendered_episodes(scene_seeds: list[int], actions: torch.Tensor, world: WorldConfig, context_frames: int):
    """The world's episodes of each scene under its actions (B, T, 2) (with their layers), their frames
    (B, T, 3, S, S) and true agent positions (B, T, 2), after checking that K context frames leave frames to
    generate."""
    frames, K = actions.shape[1], context_frames
    if not 1 <= K < frames:
        raise ValueError(f"context_frames={K} must be at least 1 and fewer than the stream's {frames} frames")
    episodes = [simulate(s, a.numpy(), world, layers=True) for s, a in zip(scene_seeds, actions, strict=True)]
    agent_pos = torch.from_numpy(np.stack([e.agent_pos for e in episodes])).float()
    return episodes, as_video([e.frames for e in episodes]), agent_pos


def object_truth(episodes: list, frames: torch.Tensor) -> ObjectTruth:
    """The sprites' truth (`ObjectTruth`) of episodes simulated with their layers, whose frames are (B, T, 3, S, S):
    what each pixel shows, the frames with the sprites painted out, colours, centres and radii."""
    B, T, _, S, _ = frames.shape
    N = max(len(e.sprite_radius) for e in episodes)
    beneath = torch.zeros_like(frames)
    visible, area = torch.zeros(B, T, N, S, S), torch.zeros(B, T, N)
    colour, radius, centre = torch.zeros(B, N, 3), torch.zeros(B, N), torch.zeros(B, T, N, 2)
    agent = torch.zeros(B, T, S, S)
    for b, episode in enumerate(episodes):
        n = len(episode.sprite_radius)
        radius[b, :n] = torch.from_numpy(episode.sprite_radius)
        centre[b, :, :n] = torch.from_numpy(episode.sprite_pos)
        sprites = tuple(range(1, n + 1))
        for t, layers in enumerate(episode.layers):
            beneath[b, t] = torch.from_numpy(layers.image(without=sprites)).permute(2, 0, 1) / 255
            shown = torch.from_numpy(layers.visible()).float()  # (L, S, S)
            for k, body in enumerate(layers.body.tolist()):
                if body == 0:
                    agent[b, t] += shown[k]
                else:
                    visible[b, t, body - 1] = shown[k]
                    area[b, t, body - 1] = float(layers.coverage[k].sum())
                    colour[b, body - 1] = torch.from_numpy(layers.colour[k]).float() / 255
    return ObjectTruth(frames, beneath, visible, area, colour, centre, radius, agent)


def validation_clips(spec: ToyWorldSpec, clips: int, frames: int) -> tuple[list[int], torch.Tensor]:
    """The scene seeds of the first `clips` validation clips of a toy-world dataset made with `spec`, and the
    scripted policy's actions (B, T, 2) that made them, continued to `frames`."""
    seeds = [clip_seeds(spec, "val", i) for i in range(clips)]
    return [s for s, _ in seeds], policy_actions([a for _, a in seeds], frames, spec.persistence)


def stream_toy_clips(model: CausalVideoDiT, codec: LatentCodec, encoder: TextEncoder, world: WorldConfig,
                     scene_seeds: list[int], actions: torch.Tensor, steps: int = 1, shift: float = 1.0,
                     seed: int = 0, progress: bool = False, context_frames: int = 1) -> ToyStream:
    """Stream T - K frames after the first K true frames of each scene (the context, fed through the cache:
    `StreamingGenerator.reset(context=...)`), driven by `actions` (B, T, 2) (frame f gets actions[f])."""
    frames, K = actions.shape[1], context_frames
    episodes, truth, agent_pos = rendered_episodes(scene_seeds, actions, world, K)  # truth (B, T, 3, S, S)
    param = next(model.parameters())
    context = codec.encode(truth[:, :K]).to(param)  # (B, K, C, H, W)
    text = encoder.encode([e.caption for e in episodes]).to(param)
    controls = actions.to(param) if model.cfg.control_dim else None  # (B, T, 2)
    later = None if controls is None else controls[:, K:]  # (B, T-K, 2): the generated frames'

    def start(gen: StreamingGenerator) -> None:
        gen.reset(text, context=context, context_controls=None if controls is None else controls[:, :K])

    warm = StreamingGenerator(model, steps=steps, shift=shift, seed=seed)  # a warm-up, not timed, on its own noise:
    start(warm)  # the stream below draws the seed's first noise, as every stream of the seed does
    warm.generate(1, None if later is None else later[:, :1])
    del warm
    gen = StreamingGenerator(model, steps=steps, shift=shift, seed=seed)
    start(gen)
    n = frames - K
    full = min(n, max((model.cfg.visible_frames or model.cfg.sink_frames) + 2 - K, 0))  # window full
    begin = time.perf_counter()
    head = gen.generate(full, None if later is None else later[:, :full])
    filled = gen.memory_bytes()
    tail = gen.generate(n - full, None if later is None else later[:, full:], progress=progress)
    seconds = (time.perf_counter() - begin) / n
    latents = torch.cat([head, tail], dim=1)  # (B, T-K, C, H, W)
    if not torch.isfinite(latents).all():
        raise FloatingPointError("the generator produced non-finite latents")
    latents = torch.cat([context, latents], dim=1).float().cpu()  # (B, T, C, H, W)
    generated = after_context(truth, codec, latents, K)
    return ToyStream(generated, truth, latents, agent_pos, seconds, (filled, gen.memory_bytes()), K,
                     object_truth(episodes, truth))


def after_context(truth: torch.Tensor, codec: LatentCodec, latents: torch.Tensor, context_frames: int) -> torch.Tensor:
    """The true video (B, T, 3, S, S) up to the end of the K context latents, then the decoded generated frames.
    The whole latent sequence is decoded at once: a causal VAE decodes a latent from the ones before it."""
    cut = video_frames(codec, context_frames)
    return torch.cat([truth[:, :cut], codec.decode(latents)[:, cut:]], dim=1)


@torch.no_grad()
def teacher_forced_toy_clips(model: CausalVideoDiT, codec: LatentCodec, encoder: TextEncoder, world: WorldConfig,
                             scene_seeds: list[int], actions: torch.Tensor, steps: int = 1, shift: float = 1.0,
                             seed: int = 0, context_frames: int = 1, batch_size: int = 32) -> ToyStream:
    """The same clips as `stream_toy_clips`, but every frame after the K context frames is made from the true
    frames before it (teacher forcing: `teacher_forced_frames` on the encoded truth, K Euler steps), never from the
    generator's own: the model's errors without exposure bias. Its gap to the stream is what continuing from its
    own frames costs. No time is measured (`seconds_per_frame` is nan)."""
    from lightning_aapt.inference.teacher_forcing import teacher_forced_frames

    frames, K = actions.shape[1], context_frames
    episodes, truth, agent_pos = rendered_episodes(scene_seeds, actions, world, K)  # truth (B, T, 3, S, S)
    param = next(model.parameters())
    true_latents = codec.encode(truth)  # (B, T, C, H, W)
    rng = torch.Generator().manual_seed(seed)
    made = []
    for i in range(0, len(episodes), batch_size):  # the masked pass over T frames: memory grows with T^2 per clip
        clips = slice(i, i + batch_size)
        latents = true_latents[clips].to(param)  # (b, T, C, H, W)
        text = encoder.encode([e.caption for e in episodes[clips]]).to(param)
        controls = actions[clips].to(param) if model.cfg.control_dim else None  # (b, T, 2)
        noise = torch.randn((latents.shape[0], frames - 1, *latents.shape[2:]), generator=rng).to(param)
        made.append(teacher_forced_frames(model, latents, text, controls, noise, steps, shift)[:, K - 1 :].float())
    latents = torch.cat(made).cpu()  # (B, T-K, C, H, W): frames K..T-1
    if not torch.isfinite(latents).all():
        raise FloatingPointError("the generator produced non-finite latents")
    latents = torch.cat([true_latents[:, :K].float().cpu(), latents], dim=1)  # (B, T, C, H, W)
    generated = after_context(truth, codec, latents, K)
    return ToyStream(generated, truth, latents, agent_pos, float("nan"), (0, 0), K, object_truth(episodes, truth))


def floor_videos(stream: ToyStream, scene_seeds: list[int], actions: torch.Tensor, world: WorldConfig,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """What a generator is compared with, videos (B, T, 3, S, S) sharing the stream's K context frames:
    - "repeat": the last context frame, repeated;
    - "perfect_physics": the world's own physics from the true state at frame K-1, with the sprites' velocities
      redrawn from the prior (a perfect simulator that does not read motion from the context; the agent follows
      its true actions). With one context frame nothing better is possible; more context reveals the motion, and
      a generator that reads it beats this floor.
    """
    K = stream.context_frames
    repeat = stream.truth.clone()
    repeat[:, K:] = stream.truth[:, K - 1 : K]
    physics = as_video([simulate(s, a.numpy(), world, redraw_after=K, redraw_seed=seed * 100_003 + i).frames
                        for i, (s, a) in enumerate(zip(scene_seeds, actions, strict=True))])  # (B, T, 3, S, S)
    return {"repeat": repeat, "perfect_physics": physics}


def score_toy_video(video: torch.Tensor, stream: ToyStream, window: int, extractor=None,
                    reference: torch.Tensor | None = None, latents: torch.Tensor | None = None,
                    real_latents: torch.Tensor | None = None, fps: float | None = None,
                    reference_features: dict | None = None) -> DriftReport:
    """Per-window metrics (`long_horizon_drift`) of a video (B, T, 3, S, S) of the stream's scenes against their
    re-rendered truth, windows from the first generated frame: agent error, action following, sharpness, pixel
    error, the objects, and the Fréchet distance to `reference` videos (other scenes' truth) when an extractor is
    given (`reference_features`: one dict for every video scored against the same reference, as in
    `long_horizon_drift`)."""
    name = metric_name(extractor) if extractor is not None else "fd"
    ref = reference if reference is not None else stream.truth
    return long_horizon_drift(video, ref, window, extractor, name, latents, real_latents, stream.truth,
                              stream.agent_pos, fps=fps, first=stream.context_frames, objects=stream.objects,
                              reference_features=reference_features)
