"""Why objects fade in a stream: the one-step amplitude transfer of a generator on the toy world.

Notation: B clips, T frames, C latent channels, H/W latent height/width, S pixel size.

Give the model every input frame of a clip with a body's contrast scaled to a (frame = painted out + a x (truth -
painted out)), make each next frame from the frames before it (teacher forcing, the pass stages 1-3 train and
evaluate with), and measure how much of the true next frame's body the output holds at the true place:
a_out(a) = <out - painted out, truth - painted out> / |truth - painted out|^2 over the body's pixels (dilated by
one pixel), pooled over clips and frames (above a = 1 the decoder's clamp to [0, 1] caps bright bodies). A stream
feeds its own output back in, so a_out(a) < a at every a makes "no object" the only fixed point: the object fades
geometrically, with a half-life of ln 0.5 / ln a_out(1) frames. An object that stays needs a_out(a) - a to change
sign from + to - near a = 1 (a stable fixed point), as it does for the agent, whose motion the actions give.

The same teacher-forced pass at a = 1 gives the model's error on the pixels the body covers in the true next frame
and that differ from the previous true frame (for the objects, less those the agent covers in that frame or the
one before: the agent passing over an object is the agent's motion), relative to copying the previous true frame
there: below 1 means the model has learned how the body moves. Only pixels that change count: where a body rests,
copying is exact and the ratio would weigh the model's noise on still bodies against nothing (NaN when no body
pixel changes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lightning_aapt.codecs import LatentCodec
from lightning_aapt.codecs.base import video_frames
from lightning_aapt.data import read_manifest
from lightning_aapt.evaluation.toy import rendered_episodes, validation_clips
from lightning_aapt.text import TextEncoder
from lightning_aapt.world import WorldConfig
from lightning_aapt.world.dataset import ToyWorldSpec

AMPLITUDES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)


def half_life(a_out_1: float) -> float:
    """Frames until a body fading by a_out(1) per frame keeps half its contrast (inf if it does not fade)."""
    return float(np.log(0.5) / np.log(a_out_1)) if 0 < a_out_1 < 1 else (float("inf") if a_out_1 >= 1 else 0.0)


def body_videos(episodes: list, bodies: str) -> tuple[Tensor, Tensor]:
    """Each episode's frames, and the same frames with `bodies` ("objects": the sprites, or "agent") painted out:
    two float videos (B, T, 3, S, S) in [0, 1], not rounded. The frames with the bodies' contrast scaled to a are
    painted out + a x (frames - painted out)."""
    whole, painted = [], []
    for episode in episodes:
        chosen = tuple(range(1, len(episode.sprite_radius) + 1)) if bodies == "objects" else (0,)
        whole.append(np.stack([lay.compose() for lay in episode.layers]))
        painted.append(np.stack([lay.compose(without=chosen) for lay in episode.layers]))
    whole, painted = (torch.from_numpy(np.stack(v)).permute(0, 1, 4, 2, 3).float() / 255 for v in (whole, painted))
    return whole, painted


def body_mask(episodes: list, bodies: str, dilate: int = 1) -> Tensor:
    """(B, T, 1, S, S) bool: pixels any of `bodies` covers in the frame, dilated by `dilate` pixels."""
    masks = []
    for episode in episodes:
        chosen = set(range(1, len(episode.sprite_radius) + 1)) if bodies == "objects" else {0}
        masks.append(np.stack([lay.coverage[[b in chosen for b in lay.body]].sum(0) > 0 for lay in episode.layers]))
    mask = torch.from_numpy(np.stack(masks)).float()  # (B, T, S, S)
    size = 2 * dilate + 1
    grown = torch.nn.functional.max_pool2d(mask.flatten(0, 1)[:, None], size, 1, dilate)  # (B*T, 1, S, S)
    return grown.view(*mask.shape[:2], 1, *mask.shape[2:]) > 0


@torch.no_grad()
def amplitude_transfer(model: torch.nn.Module, codec: LatentCodec, encoder: TextEncoder, world: WorldConfig,
                       scene_seeds: list[int], actions: Tensor, steps: int = 1, shift: float = 1.0, seed: int = 0,
                       amplitudes: tuple[float, ...] = AMPLITUDES, context_frames: int = 2,
                       batch_size: int = 32) -> dict:
    """a_out(a) for the objects and for the agent of clips of scenes `scene_seeds` under `actions` (B, T, 2), each
    next frame made in `steps` Euler steps on the grid shifted by `shift` from the same noise at every a; and the
    teacher-forced pixel error on each kind of body relative to copying the previous true frame. Frames are scored
    from `context_frames` on (K: streams start after K true frames; one frame cannot show how things move).

    Returns {"objects" | "agent": {"amplitudes", "a_out", "half_life", "error_vs_copy"}}."""
    from lightning_aapt.inference.teacher_forcing import teacher_forced_frames

    episodes, truth, _ = rendered_episodes(scene_seeds, actions, world, 1)  # truth (B, T, 3, S, S)
    param = next(model.parameters())
    text = encoder.encode([e.caption for e in episodes])  # (B, L, Dt)
    controls = actions if model.cfg.control_dim else None  # (B, T, 2)
    B, T = actions.shape[:2]
    if not 1 <= context_frames < T:
        raise ValueError(f"context_frames={context_frames} must be at least 1 and fewer than the clips' {T} frames")
    first = video_frames(codec, context_frames)  # scored from here: every frame made after K true ones
    noise = None
    result = {}
    for bodies in ("objects", "agent"):
        mask = body_mask(episodes, bodies)[:, first:]  # (B, T', 1, S, S): the made frames' body pixels
        covered = body_mask(episodes, bodies, dilate=0)  # (B, T, 1, S, S) undilated
        if bodies == "objects":  # less where the agent is, in the frame or the one before
            agent = body_mask(episodes, "agent", dilate=0)
            covered = covered & ~agent & ~torch.cat([agent[:, :1], agent[:, :-1]], dim=1)
        covered = covered[:, first:]
        whole, painted = body_videos(episodes, bodies)  # (B, T, 3, S, S) each
        signal_in = whole - painted  # the bodies' contrast in every frame
        target = signal_in[:, first:]  # the true next frames' body signal
        a_out, error = [], float("nan")
        for a in amplitudes:
            latents = codec.encode(painted + a * signal_in)  # (B, T, C, H, W): the bodies at contrast a
            if noise is None:  # the same noise for every a and body
                noise = torch.randn((B, latents.shape[1] - 1, *latents.shape[2:]),
                                    generator=torch.Generator().manual_seed(seed))
            made = []
            for i in range(0, B, batch_size):
                clips = slice(i, i + batch_size)
                made.append(teacher_forced_frames(
                    model, latents[clips].to(param), text[clips].to(param),
                    None if controls is None else controls[clips].to(param), noise[clips].to(param), steps,
                    shift).float().cpu())  # (b, T-1, C, H, W)
            out = codec.decode(torch.cat([latents[:, :1], torch.cat(made)], dim=1))[:, first:]  # (B, T', 3, S, S)
            signal = (out - painted[:, first:]) * target * mask
            a_out.append(float(signal.sum() / (target.pow(2) * mask).sum().clamp_min(1e-12)))
            if a == 1.0:  # the model's error where the body is and moves, against copying the previous true frame
                copy = truth[:, first - 1 : -1]  # each frame's previous true frame
                moves = covered & ((copy - truth[:, first:]).abs().amax(dim=2, keepdim=True) > 0)  # (B, T', 1, S, S)
                wrong = ((out.clamp(0, 1) - truth[:, first:]).pow(2) * moves).sum()
                copied = ((copy - truth[:, first:]).pow(2) * moves).sum()
                error = float(wrong / copied) if copied > 0 else float("nan")
        at_one = a_out[amplitudes.index(1.0)] if 1.0 in amplitudes else float("nan")
        result[bodies] = {"amplitudes": list(amplitudes), "a_out": a_out, "half_life": half_life(at_one),
                          "error_vs_copy": error}
    return result


def validation_transfer(model: torch.nn.Module, data_dir: str | Path, clips: int, frames: int, steps: int = 1,
                        shift: float = 1.0, seed: int = 0, context_frames: int = 2) -> dict | None:
    """`amplitude_transfer` on the first `clips` validation scenes of a toy-world dataset, `frames` long, under the
    scripted policy that made them; None for a dataset the world cannot re-render."""
    manifest = read_manifest(data_dir)
    if manifest.toy_world is None:
        return None
    spec = ToyWorldSpec.from_manifest(manifest)
    scenes, actions = validation_clips(spec, clips, frames)
    return amplitude_transfer(model, manifest.normalized_codec(), spec.text_encoder(), spec.world, scenes,
                              actions, steps, shift, seed, context_frames=context_frames)


def transfer_metrics(transfer: dict) -> dict[str, float]:
    """Flat names for logging: `objects_a_out_1`, `objects_error_vs_copy`, `agent_a_out_1`, ..."""
    flat = {}
    for bodies, values in transfer.items():
        if 1.0 in values["amplitudes"]:
            flat[f"{bodies}_a_out_1"] = values["a_out"][values["amplitudes"].index(1.0)]
        flat[f"{bodies}_error_vs_copy"] = values["error_vs_copy"]
    return flat
