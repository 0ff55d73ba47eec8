"""The toy-world dataset: train the spec's learned codec when it names one that does not exist yet, render clips,
encode them with the spec's codec, write shards and a manifest (what to render:
`lightning_aapt.world.dataset.ToyWorldSpec`)."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from datamodules.shards import ShardWriter, dataset_files, write_manifest
from lightning_aapt.codecs import LatentCodec, LatentStats
from lightning_aapt.codecs.learned import LearnedCodec, save_codec, train_codec
from lightning_aapt.errors import ConfigError, DataError
from lightning_aapt.world.dataset import CodecRecipe, ToyWorldSpec, render_clip, render_episode


def train_toy_codec(spec: ToyWorldSpec, recipe: CodecRecipe, out: Path, log=print) -> LearnedCodec:
    """Train the learned codec of `recipe` on one frame in `recipe.every` of `spec`'s training clips (the loss
    weighted towards the bodies the world's layers show) and save it to `out` (atomically); returns it loaded."""
    start = time.perf_counter()
    frames, bodies = [], []
    for i in range(spec.train_clips):
        episode, _ = render_episode(spec, "train", i, layers=True)
        frames.append(episode.frames[::recipe.every])
        bodies.append(np.stack([lay.coverage.sum(0).clip(0, 1) for lay in episode.layers[::recipe.every]]))
    video = torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2).float() / 255  # (N, 3, S, S)
    cover = torch.from_numpy(np.concatenate(bodies)).float()[:, None]  # (N, 1, S, S)
    log(f"training the codec {out} on {len(video)} frames of {spec.train_clips} clips ({recipe.model}, "
        f"{recipe.training.steps} steps)")
    trained = train_codec(video, cover, recipe.model, recipe.training,
                          log=lambda step, loss: log(f"codec step {step}/{recipe.training.steps}: loss {loss:.5f}"))
    with torch.no_grad():
        error = (trained.decode(trained.encode(video[:2048])).clamp(0, 1) - video[:2048]).pow(2).mean().item()
    psnr = 10 * float(np.log10(1 / max(error, 1e-12)))
    record = {"frames": len(video), "seconds": round(time.perf_counter() - start, 1), "psnr_db_train": psnr,
              "training": asdict(recipe.training), "every": recipe.every, "world": spec.world.to_dict()}
    save_codec(trained, out, record)
    codec = LearnedCodec(out)
    log(f"wrote {out} (PSNR {psnr:.1f} dB on training frames, {record['seconds']} s, SHA-256 {codec.sha256[:12]}...)")
    return codec


def encode_frames(codec: LatentCodec, frames: np.ndarray) -> np.ndarray:
    """(F, S, S, 3) uint8 -> latents (F, C, h, w) float16, as stored."""
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255  # (1, F, 3, S, S)
    return codec.encode(video)[0].numpy().astype(np.float16)


def prepare_toy_world(out: Path, spec: ToyWorldSpec, progress: bool = True, overwrite: bool = False,
                      flag: str = "--out") -> dict:
    """Render and write the dataset to `out` (train-*.tar, val-*.tar, manifest.json); returns the manifest.

    Deterministic from `spec.seed`. The manifest is written last, so its presence marks a complete dataset.
    `overwrite` replaces a dataset this project wrote there; a folder holding anything else is refused (by `flag`).
    """
    out = Path(out)
    if (out / "manifest.json").exists() and not overwrite:
        raise ConfigError(f"{flag}={out} already holds a dataset (manifest.json); pass --overwrite true to replace it")
    stale = dataset_files(out, flag)  # an unfinished render's shards, or the dataset --overwrite replaces
    start = time.perf_counter()
    if spec.codec_path is not None and not Path(spec.codec_path).exists():
        if spec.codec_recipe is None:
            raise DataError(f"codec_path {spec.codec_path} does not exist: train it with `python -m lightning_aapt "
                            "prepare codec --out ...`, or give the world a codec_recipe to train it here")
        train_toy_codec(spec, spec.codec_recipe, Path(spec.codec_path), log=lambda line: print(line, file=sys.stderr))
    codec, encoder = spec.codec(), spec.text_encoder()
    for path in stale:  # only once the codec is known to load
        path.unlink()
    splits = {}
    channels = codec.latent_channels
    sums, squares, elements = np.zeros(channels), np.zeros(channels), 0  # of the stored training latents, float64
    total = spec.train_clips + spec.val_clips
    with tqdm(total=total, desc=f"rendering toy world -> {out}", unit="clip", disable=not progress,
              file=sys.stderr) as bar:  # closed (its line ended) on an error too
        for split, count in (("train", spec.train_clips), ("val", spec.val_clips)):
            with ShardWriter(out, split, spec.samples_per_shard) as writer:
                for i in range(count):
                    frames, actions, meta = render_clip(spec, split, i)
                    text = encoder.encode([meta["caption"]])[0].numpy()
                    latents = encode_frames(codec, frames)  # (F, C, h, w) float16
                    if split == "train":
                        x = np.moveaxis(latents.astype(np.float64), 1, 0).reshape(channels, -1)  # (C, F*h*w)
                        sums, squares, elements = sums + x.sum(1), squares + (x * x).sum(1), elements + x.shape[1]
                    writer.write(f"{split}_{i:07d}", latents, text, actions, meta)
                    bar.update()
            splits[split] = {"clips": count, "shards": writer.shards}
    mean = sums / max(elements, 1)
    std = np.sqrt(np.maximum(squares / max(elements, 1) - mean**2, 0.0))
    stats = LatentStats(tuple(map(float, mean)), tuple(max(float(v), 1e-3) for v in std))
    manifest = {
        "format": "lightning_aapt/clips-v1", "source": "toy-world", "splits": splits, "shapes": spec.shapes(),
        "fps": spec.fps, "codec": {"name": codec.name, "latent_channels": codec.latent_channels,
                              "spatial_factor": codec.spatial_factor, "temporal_factor": codec.temporal_factor,
                              **({"path": str(Path(spec.codec_path).resolve()), "sha256": codec.sha256}
                                 if spec.codec_path is not None else {})},
        "latent_stats": {**stats.to_dict(), "measured_on": "train split, every stored element"},
        "text_encoder": {"name": encoder.name, "dim": encoder.dim, "max_tokens": encoder.max_tokens},
        "toy_world": asdict(spec),
        "made_by": {"command": " ".join(sys.argv), "seconds": round(time.perf_counter() - start, 1)},
    }
    write_manifest(out, manifest)
    return manifest
