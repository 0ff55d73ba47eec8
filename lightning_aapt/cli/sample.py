"""`python -m lightning_aapt sample`: stream a stage's generator from a toy scene next to the truth, or from a real
dataset's validation clip, decoded frame by frame by the codec's stream decoder (Wan's VAE: live decoding)."""

from __future__ import annotations

from pathlib import Path

import torch

from lightning_aapt.cli.signature import run_function
from lightning_aapt.data import Manifest
from lightning_aapt.errors import ConfigError, check_at_least


def sample(ckpt: Path, out: Path, frames: int = 80, steps: int | None = None, data: Path = Path("data/toy32"),
           clip: int = 0, actions: Path | None = None, seed: int = 0, context: int | None = None, scale: int = 4,
           overwrite: bool = False) -> int:
    """Stream a stage's generator (EMA weights) from a validation clip: on the toy world next to the re-rendered
    truth; on other data (e.g. `prepare videos`) decoded latent frame by latent frame as a live stream would be.

    Args:
        ckpt: stage checkpoint (stage 1, 2 or 3).
        out: output .gif or .mp4.
        frames: latent frames of the stream, the real context frames included.
        steps: network evaluations per frame (default: the checkpoint's own, 1 for stage 3).
        data: the dataset (its manifest): the toy world, or shards written by `prepare`.
        clip: validation clip whose first frames and caption start the stream.
        actions: .npy (frames, 2) actions; default the scripted policy.
        seed: noise seed.
        context: real frames the stream starts from, fed through the cache (default: the checkpoint's own).
        scale: pixel upscaling of the written video.
        overwrite: replace an existing --out.
    """
    import numpy as np

    from lightning_aapt.checkpoints import load_generator
    from lightning_aapt.data import dataset_codec, read_manifest
    from lightning_aapt.evaluation.toy import policy_actions, stream_toy_clips
    from lightning_aapt.files import check_output
    from lightning_aapt.video import to_uint8, write_video
    from lightning_aapt.world.dataset import clip_seeds, spec_from_manifest

    check_output(out, "--out", overwrite, (".gif", ".mp4"), ckpt=ckpt, actions=actions)
    default = " (leave it out for the checkpoint's own)"
    check_at_least(("--context", context, 1), ("--steps", steps, 1), ("--clip", clip, 0), ("--scale", scale, 1),
                   why={"--context": default, "--steps": default})
    manifest = read_manifest(data, flag="--data")
    shapes = manifest.shapes
    generator = load_generator(ckpt, "--ckpt")
    generator.check_streams("sample")
    generator.check_data(shapes, f"--data {data}")
    model, shift = generator.model.eval(), generator.sampling.shift
    steps, context = steps or generator.sampling.steps, context or generator.sampling.context_frames
    check_at_least(("--frames", frames, context + 1),
                   why={"--frames": f" (--context {context} real frames, then at least one generated)"})
    if manifest.toy_world is None:
        return sample_dataset(model, data, manifest, out, frames, steps, shift, clip, seed, context, scale)
    toy = spec_from_manifest(data)
    scene, action_seed = clip_seeds(toy, "val", clip)
    if actions:
        try:
            played = torch.from_numpy(np.load(actions, allow_pickle=False).astype(np.float32))[None]
        except (OSError, ValueError) as err:
            raise ConfigError(f"--actions {actions}: not a .npy array of numbers ({err})") from None
        if played.shape[1:] != (frames, toy.world.action_dim):
            raise ConfigError(f"--actions {actions}: expected shape ({frames}, {toy.world.action_dim}) (--frames "
                              f"actions of the world's width), got {tuple(played.shape[1:])}")
        if not torch.isfinite(played).all():
            raise ConfigError(f"--actions {actions}: holds NaN or infinite values")
    else:
        played = policy_actions([action_seed], frames, toy.persistence)
    print(f"rendering the world's truth for {frames} frames, then streaming {frames - context} after {context} real "
          "ones (the whole video is held to write one file: memory grows with --frames)", flush=True)
    stream = stream_toy_clips(model, dataset_codec(data), toy.text_encoder(), toy.world, [scene], played,
                              steps=steps, shift=shift, seed=seed, progress=True, context_frames=context)
    write_video(out, to_uint8(stream.side_by_side()), fps=toy.fps, scale=scale)
    error = stream.frame_error()[context:]
    print(f"wrote {out}: {frames} frames (generated left, truth right, {context} real context frames); pixel MSE vs "
          f"truth {error[:8].mean():.4f} (first 8 generated) -> {error[-8:].mean():.4f} (last 8); "
          f"{1e3 * stream.seconds_per_frame:.1f} ms/frame ({steps} NFE, decode excluded)")
    return 0


def sample_dataset(model, data: Path, manifest: Manifest, out: Path, frames: int, steps: int, shift: float, clip: int,
                   seed: int, context: int, scale: int) -> int:
    """A stream from validation clip `clip` of a dataset without a world to re-render: its first `context` latent
    frames and caption, then the generator's; every latent frame decoded as it comes (`codec.stream_decoder()`)."""
    import itertools
    import time

    from datamodules import WebVideoDataModule
    from lightning_aapt.codecs.base import video_frames
    from lightning_aapt.inference.streaming import StreamingGenerator
    from lightning_aapt.video import to_uint8, write_video

    source = WebVideoDataModule(data_dir=str(data), num_frames=context, batch_size=1)
    source.setup("validate")
    batches = list(itertools.islice(source.val_dataloader(), clip + 1))
    if len(batches) <= clip:
        raise ConfigError(f"--clip {clip}: {data} has only {len(batches)} validation clip(s)")
    batch = batches[clip]
    param = next(model.parameters())
    generator = StreamingGenerator(model, steps=steps, shift=shift, seed=seed)
    generator.reset(batch.text.to(param), context=batch.latents.to(param))
    begin = time.perf_counter()
    latents = torch.cat([batch.latents.to(param), generator.generate(frames - context)], dim=1).float().cpu()
    seconds = (time.perf_counter() - begin) / max(frames - context, 1)
    codec = source.codec
    decoder = codec.stream_decoder()
    begin = time.perf_counter()
    video = torch.cat([decoder.step(latents[:, f]) for f in range(frames)], dim=1)  # (1, T, 3, H, W)
    decode = (time.perf_counter() - begin) / frames
    write_video(out, to_uint8(video[0]), fps=manifest.fps or 8.0, scale=scale)
    print(f"wrote {out}: {frames} latent frames = {video_frames(codec, frames)} video frames ({context} real context "
          f"latents, caption {batch.meta[0].get('caption', '?')!r}); {1e3 * seconds:.1f} ms per latent frame "
          f"({steps} NFE), decode {1e3 * decode:.1f} ms per latent frame (streamed)")
    return 0


def main(argv: list[str]) -> int:
    return run_function(sample, argv, "sample")
