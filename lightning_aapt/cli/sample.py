"""`python -m lightning_aapt sample`: stream a stage's generator from a toy scene, next to the truth."""

from __future__ import annotations

from pathlib import Path

import torch

from lightning_aapt.cli.signature import run_function


def sample(ckpt: Path, out: Path, frames: int = 80, steps: int = 1, data: Path = Path("data/toy"), clip: int = 0,
           actions: Path | None = None, seed: int = 0, context: int = 2, scale: int = 4) -> int:
    """Stream a stage's generator (EMA weights) from a toy validation scene and write it next to the truth.

    Args:
        ckpt: stage checkpoint (stage 1, 2 or 3).
        out: output .gif or .mp4.
        frames: frames of the video, the real context frames included.
        steps: network evaluations per frame (1 for stage 3).
        data: toy-world dataset (its manifest).
        clip: validation scene whose first frames and caption start the stream.
        actions: .npy (frames, 2) actions; default the scripted policy.
        seed: noise seed.
        context: real frames the stream starts from (fed through the cache).
        scale: pixel upscaling of the written video.
    """
    import numpy as np

    from lightning_aapt.data import dataset_codec
    from lightning_aapt.evaluation.toy import policy_actions, stream_toy_clips
    from lightning_aapt.stages.checkpoints import load_backbone
    from lightning_aapt.video import to_uint8, write_video
    from lightning_aapt.world.dataset import clip_seeds, spec_from_manifest

    model = load_backbone(ckpt).eval()
    if model.cfg.bidirectional:
        raise SystemExit(f"{ckpt} holds a bidirectional (stage-0) model: sample streams causal stages 1-3")
    toy = spec_from_manifest(data)
    scene, action_seed = clip_seeds(toy, "val", clip)
    if actions:
        played = torch.from_numpy(np.load(actions).astype(np.float32))[None]
        if played.shape[1:] != (frames, toy.world.action_dim):
            raise SystemExit(f"--actions {actions}: expected ({frames}, {toy.world.action_dim}), "
                             f"got {tuple(played.shape[1:])}")
    else:
        played = policy_actions([action_seed], frames, toy.persistence)
    stream = stream_toy_clips(model, dataset_codec(data), toy.text_encoder(), toy.world, [scene], played,
                              steps=steps, seed=seed, progress=True, context_frames=context)
    write_video(out, to_uint8(stream.side_by_side()), fps=8, scale=scale)
    error = stream.frame_error()[context:]
    print(f"wrote {out}: {frames} frames (generated left, truth right, {context} real context frames); pixel MSE vs "
          f"truth {error[:8].mean():.4f} (first 8 generated) -> {error[-8:].mean():.4f} (last 8); "
          f"{1e3 * stream.seconds_per_frame:.1f} ms/frame ({steps} NFE, decode excluded)")
    return 0


def main(argv: list[str]) -> int:
    return run_function(sample, argv, "sample")
