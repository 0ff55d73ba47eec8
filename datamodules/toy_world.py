"""The toy-world dataset: render clips, encode them with the toy codec, write shards and a manifest."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from datamodules.shards import ShardWriter, read_manifest, write_manifest
from lightning_aapt.codecs import LatentStats, ToyCodec
from lightning_aapt.text import HashTextEncoder
from lightning_aapt.world import WorldConfig, scripted_actions, simulate

FPS = 8  # toy clips play at 8 frames per second (one latent frame per frame)


@dataclass(frozen=True)
class ToyWorldSpec:
    """What `prepare toy-world` renders.

    Args:
        train_clips, val_clips: number of clips per split (different seeds).
        clip_frames: frames per clip.
        world: the world's parameters.
        codec_block: spatial factor of the toy codec (latent channels = 3 * block^2).
        text_dim, text_tokens: toy text encoder width and length.
        persistence: probability that the scripted policy keeps its action from one frame to the next.
        seed: base seed; clip i of a split uses scene and action seeds derived from it.
        samples_per_shard: clips per tar shard.
    """

    train_clips: int = 1000
    val_clips: int = 64
    clip_frames: int = 16
    world: WorldConfig = field(default_factory=WorldConfig)
    codec_block: int = 4
    text_dim: int = 64
    text_tokens: int = 24
    persistence: float = 0.85
    seed: int = 0
    samples_per_shard: int = 100

    def codec(self) -> ToyCodec:
        return ToyCodec(self.codec_block)

    def text_encoder(self) -> HashTextEncoder:
        return HashTextEncoder(self.text_dim, self.text_tokens)

    def shapes(self) -> dict:
        """Shapes of one sample, as the manifest records them."""
        latent = self.world.size // self.codec_block
        return {"latents": [self.clip_frames, self.codec().latent_channels, latent, latent],
                "text": [self.text_tokens, self.text_dim], "controls": [self.clip_frames, self.world.action_dim]}


def clip_seeds(spec: ToyWorldSpec, split: str, index: int) -> tuple[int, int]:
    """(scene seed, action seed) of clip `index` of `split`: disjoint between splits, stable across runs."""
    base = np.random.SeedSequence([spec.seed, {"train": 0, "val": 1}[split], index]).generate_state(2)
    return int(base[0]), int(base[1])


def render_clip(spec: ToyWorldSpec, split: str, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Frames (F, S, S, 3) uint8, actions (F, 2) float32 and metadata of one clip."""
    scene_seed, action_seed = clip_seeds(spec, split, index)
    actions = scripted_actions(action_seed, spec.clip_frames, spec.persistence)
    episode = simulate(scene_seed, actions, spec.world)
    meta = {"fps": FPS, "caption": episode.caption, "source": "toy-world", "codec": spec.codec().name,
            "world": {"scene_seed": scene_seed, "action_seed": action_seed, "config": spec.world.to_dict()}}
    return episode.frames, actions, meta


def encode_frames(codec: ToyCodec, frames: np.ndarray) -> np.ndarray:
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
                              "spatial_factor": codec.spatial_factor, "temporal_factor": codec.temporal_factor},
        "latent_stats": {**stats.to_dict(), "measured_on": "train split, every stored element"},
        "text_encoder": {"name": encoder.name, "dim": encoder.dim, "max_tokens": encoder.max_tokens},
        "toy_world": asdict(spec),
        "made_by": {"command": " ".join(sys.argv), "seconds": round(time.perf_counter() - start, 1)},
    }
    write_manifest(out, manifest)
    return manifest


def spec_from_manifest(directory: Path) -> ToyWorldSpec:
    """The spec a toy-world dataset was made with (to re-render its ground truth)."""
    recorded = dict(read_manifest(directory)["toy_world"])
    recorded["world"] = WorldConfig(**recorded["world"])
    return ToyWorldSpec(**recorded)
