"""The toy-world dataset: render clips, encode them with the spec's codec, write shards and a manifest (what to render:
`lightning_aapt.world.dataset.ToyWorldSpec`)."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from datamodules.shards import ShardWriter, write_manifest
from lightning_aapt.codecs import LatentCodec, LatentStats
from lightning_aapt.world.dataset import FPS, ToyWorldSpec, render_clip


def encode_frames(codec: LatentCodec, frames: np.ndarray) -> np.ndarray:
    """(F, S, S, 3) uint8 -> latents (F, C, h, w) float16, as stored."""
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255  # (1, F, 3, S, S)
    return codec.encode(video)[0].numpy().astype(np.float16)


def prepare_toy_world(out: Path, spec: ToyWorldSpec, progress: bool = True, overwrite: bool = False) -> dict:
    """Render and write the dataset to `out` (train-*.tar, val-*.tar, manifest.json); returns the manifest.

    Deterministic from `spec.seed`. The manifest is written last, so its presence marks a complete dataset.
    """
    out = Path(out)
    if (out / "manifest.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a dataset (manifest.json); pass --overwrite to replace it")
    if out.exists() and overwrite:
        shutil.rmtree(out)
    start = time.perf_counter()
    codec, encoder = spec.codec(), spec.text_encoder()
    splits = {}
    channels = codec.latent_channels
    sums, squares, elements = np.zeros(channels), np.zeros(channels), 0  # of the stored training latents, float64
    total = spec.train_clips + spec.val_clips
    bar = tqdm(total=total, desc=f"rendering toy world -> {out}", unit="clip", disable=not progress,
               file=sys.stderr)
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
    bar.close()
    mean = sums / max(elements, 1)
    std = np.sqrt(np.maximum(squares / max(elements, 1) - mean**2, 0.0))
    stats = LatentStats(tuple(map(float, mean)), tuple(max(float(v), 1e-3) for v in std))
    manifest = {
        "format": "lightning_aapt/clips-v1", "source": "toy-world", "splits": splits, "shapes": spec.shapes(),
        "fps": FPS, "codec": {"name": codec.name, "latent_channels": codec.latent_channels,
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
