"""`python -m lightning_aapt prepare`: write WebDataset shards of video latents."""

from __future__ import annotations

from pathlib import Path

from lightning_aapt.cli.signature import run_function
from lightning_aapt.codecs.learned import AutoencoderConfig, CodecTraining
from lightning_aapt.world.dataset import ToyWorldSpec


def toy_world(out: Path, spec: ToyWorldSpec | None = None, overwrite: bool = False) -> int:
    """Render the built-in toy world into shards and a manifest, deterministic from the spec's seed.

    Args:
        out: output directory.
        spec: what to render (default: the default world, 1000 train and 64 val clips of 16 frames, 32 px); any
            field can be set, e.g. --spec.train_clips 200 --spec.world.size 16 (`--spec.help` lists them), or
            the same block as a data config's toy_world.
        overwrite: replace an existing dataset (--overwrite true).
    """
    from datamodules.toy_world import prepare_toy_world

    spec = spec or ToyWorldSpec()
    manifest = prepare_toy_world(out, spec, overwrite=overwrite)
    print(f"wrote {spec.train_clips} train and {spec.val_clips} val clips to {out} "
          f"(latents {manifest['shapes']['latents']}, {manifest['made_by']['seconds']} s)")
    return 0


def videos(out: Path, videos: Path, vae: Path, text_encoder: Path, captions: Path | None = None,
           tokenizer: Path | None = None, size: tuple[int, int] = (480, 832), fps: float = 16.0,
           clip_frames: int = 81, stride: int | None = None, val_videos: int = 0, samples_per_shard: int = 64,
           transformer: Path | None = None, device: str = "cpu", dtype: str = "float32",
           overwrite: bool = False) -> int:
    """Encode a folder of videos with Wan's VAE and their captions with umT5 into shards and a manifest (the
    `[wan]` extra). Resumable: rerun the same command and finished shards are kept.

    Args:
        out: output directory.
        videos: a folder of video files (searched recursively), or a text file listing them.
        vae: Wan's VAE: a diffusers folder (vae/ of a Wan pipeline, or the pipeline) or Wan2.1_VAE.pth.
        text_encoder: umT5: a Wan pipeline folder (text_encoder/, tokenizer/) or a UMT5EncoderModel folder.
        captions: a JSONL ({"video": name, "caption": text} per line) or CSV (video, caption); without it, each
            video's sidecar <video>.txt.
        tokenizer: the tokenizer's folder when it is not beside the text encoder.
        size: [height, width] of the frames (resized to cover, centre-cropped); divisible by the VAE's factor.
        fps: frame rate the videos are resampled to (Wan 2.1: 16, Wan 2.2: 24).
        clip_frames: video frames per clip, 1 + 4k for Wan's VAE (81 -> 21 latent frames).
        stride: frames between clip starts (default: clip_frames, no overlap).
        val_videos: the last N videos (sorted) form the validation split.
        samples_per_shard: clips per shard, at least (a shard closes between videos).
        transformer: the Wan transformer to be trained on these latents: checked up front against the VAE's
            latent channels and the text encoder's width.
        device, dtype: where the VAE and the text encoder run (cuda, bfloat16 on a GPU).
        overwrite: delete `out` first (--overwrite true).
    """
    import sys

    import torch

    from datamodules.shards import dataset_files
    from datamodules.video_files import file_hash, list_videos, prepare_videos, read_captions
    from lightning_aapt.codecs.wan import WanVAECodec
    from lightning_aapt.data import MANIFEST
    from lightning_aapt.errors import ConfigError
    from lightning_aapt.text.umt5 import UMT5TextEncoder

    if (out / MANIFEST).exists() and not overwrite:
        raise ConfigError(f"--out={out} already holds a dataset ({MANIFEST}); pass --overwrite true to replace it")
    stale = dataset_files(out) if overwrite else []  # refused here if --out holds anything prepare does not write
    files, names = list_videos(videos), read_captions(captions)
    torch_dtype = getattr(torch, dtype)
    codec = WanVAECodec(vae, dtype=torch_dtype, device=device)
    encoder = UMT5TextEncoder(text_encoder, tokenizer, dtype=torch_dtype, device=device)
    if transformer is not None:
        from lightning_aapt.checkpoints.wan import inspect_wan

        cfg = inspect_wan(transformer).config
        if (cfg.latent_channels, cfg.text_dim) != (codec.latent_channels, encoder.dim):
            raise ValueError(f"--transformer {transformer} takes {cfg.latent_channels} latent channels and "
                             f"{cfg.text_dim}-wide text, but --vae {vae} makes {codec.latent_channels} channels and "
                             f"--text_encoder {text_encoder} {encoder.dim}-wide text")
        if (size[0] // codec.spatial_factor) % cfg.patch_size or (size[1] // codec.spatial_factor) % cfg.patch_size:
            raise ValueError(f"--size {size} gives latents of {size[0] // codec.spatial_factor}x"
                             f"{size[1] // codec.spatial_factor}, not divisible by the transformer's patch "
                             f"{cfg.patch_size}")
    settings = {"size": list(size), "fps": fps, "clip_frames": clip_frames, "stride": stride or clip_frames,
                "val_videos": val_videos, "codec": codec.name, "text_encoder": encoder.name}
    record = {"codec": {"path": str(vae.resolve()), "sha256": file_hash(vae)},
              "text": {"path": str(text_encoder.resolve())}, "settings": settings, "command": " ".join(sys.argv)}
    for path in stale:  # only once every other argument is checked
        path.unlink()
    manifest = prepare_videos(out, files, names, codec, encoder, size, fps, clip_frames, stride or clip_frames,
                              val_videos, samples_per_shard, record)
    splits = manifest["splits"]
    print(f"wrote {splits['train']['clips']} train and {splits['val']['clips']} val clips to {out} (latents "
          f"{manifest['shapes']['latents']}); skipped {len(manifest['skipped'])} video(s)"
          + "".join(f"\n  {name}: {why}" for name, why in manifest["skipped"].items()))
    return 0


def codec(out: Path, spec: ToyWorldSpec | None = None, model: AutoencoderConfig | None = None,
          training: CodecTraining | None = None, every: int = 2, overwrite: bool = False) -> int:
    """Train the learned latent codec (`lightning_aapt.codecs.learned`) on the toy world's training clips and save
    it; a dataset encodes with it when its spec names it (`--spec.codec_path`, or `codec_path` in a world YAML).

    Args:
        out: the codec file to write (e.g. codecs/toy32.pt).
        spec: the world whose training clips it learns from (the same block as `prepare toy-world`'s --spec).
        model: the autoencoder's shape (spatial factor, latent channels, widths).
        training: steps, batch size, learning rate, body weight, latent noise, seed.
        every: keep one frame in `every` of each clip (neighbouring frames are nearly alike).
        overwrite: replace an existing file (--overwrite true).
    """
    from datamodules.toy_world import train_toy_codec
    from lightning_aapt.errors import ConfigError
    from lightning_aapt.world.dataset import CodecRecipe

    spec, model, training = spec or ToyWorldSpec(), model or AutoencoderConfig(), training or CodecTraining()
    if out.exists() and not overwrite:
        raise ConfigError(f"--out {out} already exists; pass --overwrite true to replace it")
    if spec.world.size % model.spatial_factor:
        raise ConfigError(f"--model.spatial_factor {model.spatial_factor} must divide the world's "
                          f"{spec.world.size}-px frames")
    if every < 1:
        raise ConfigError(f"--every must be >= 1, got {every}")
    train_toy_codec(spec, CodecRecipe(model, training, every), out)
    return 0


SOURCES = {"toy-world": toy_world, "videos": videos, "codec": codec}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SOURCES:
        print(f"usage: python -m lightning_aapt prepare {{{','.join(SOURCES)}}} [--help]: write shards of "
              "the built-in toy world, or of your videos (Wan's VAE and umT5), or train the toy world's learned "
              "codec")
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    return run_function(SOURCES[argv[0]], argv[1:], f"prepare {argv[0]}")
