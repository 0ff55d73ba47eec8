"""`python -m lightning_aapt sample`: stream a stage's generator from a toy scene, next to the truth."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main(argv: list[str]) -> int:
    """Stream a checkpoint's generator from a toy validation scene and write it next to the truth."""
    import numpy as np

    from lightning_aapt.data import dataset_codec
    from lightning_aapt.evaluation.toy import policy_actions, stream_toy_clips
    from lightning_aapt.stages.checkpoints import load_backbone
    from lightning_aapt.video import to_uint8, write_video
    from lightning_aapt.world.dataset import clip_seeds, spec_from_manifest

    parser = argparse.ArgumentParser(prog="python -m lightning_aapt sample",
                                     description="Stream a stage's generator (EMA weights) to a video file.")
    parser.add_argument("--ckpt", type=Path, required=True, help="stage checkpoint (stage 1, 2 or 3)")
    parser.add_argument("--frames", type=int, default=80, help="frames of the video, the real first frame included")
    parser.add_argument("--out", type=Path, required=True, help="output .gif or .mp4")
    parser.add_argument("--steps", type=int, default=1, help="network evaluations per frame (1 for stage 3)")
    parser.add_argument("--data", type=Path, default=Path("data/toy"), help="toy-world dataset (its manifest)")
    parser.add_argument("--clip", type=int, default=0, help="validation scene whose first frame and caption start")
    parser.add_argument("--actions", type=Path, help=".npy (T, 2) actions; default the scripted policy")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--context", type=int, default=2, help="real frames the stream starts from (fed through "
                        "the cache)")
    parser.add_argument("--scale", type=int, default=4, help="pixel upscaling of the written video")
    args = parser.parse_args(argv)
    model = load_backbone(args.ckpt).eval()
    if model.cfg.bidirectional:
        raise SystemExit(f"{args.ckpt} holds a bidirectional (stage-0) model: sample streams causal stages 1-3")
    toy = spec_from_manifest(args.data)
    scene, action_seed = clip_seeds(toy, "val", args.clip)
    if args.actions:
        actions = torch.from_numpy(np.load(args.actions).astype(np.float32))[None]
        if actions.shape[1:] != (args.frames, toy.world.action_dim):
            raise SystemExit(f"--actions {args.actions}: expected ({args.frames}, {toy.world.action_dim}), "
                             f"got {tuple(actions.shape[1:])}")
    else:
        actions = policy_actions([action_seed], args.frames, toy.persistence)
    stream = stream_toy_clips(model, dataset_codec(args.data), toy.text_encoder(), toy.world,
                              [scene], actions, steps=args.steps, seed=args.seed, progress=True,
                              context_frames=args.context)
    write_video(args.out, to_uint8(stream.side_by_side()), fps=8, scale=args.scale)
    error = stream.frame_error()[args.context :]
    print(f"wrote {args.out}: {args.frames} frames (generated left, truth right, {args.context} real context "
          f"frames); pixel MSE vs truth {error[:8].mean():.4f} (first 8 generated) -> {error[-8:].mean():.4f} "
          "(last 8); "
          f"{1e3 * stream.seconds_per_frame:.1f} ms/frame ({args.steps} NFE, decode excluded)")
    return 0
