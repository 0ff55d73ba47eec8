"""The toy world as a dataset: what `prepare toy-world` renders (`ToyWorldSpec`), which seeds make each clip, and
the spec read back from a dataset's manifest, so evaluation can re-render any clip's ground truth for any actions.
Writing the shards is `datamodules/toy_world.py`'s job."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightning_aapt.codecs import LatentCodec, LearnedCodec, ToyCodec
from lightning_aapt.data import DataError, read_manifest
from lightning_aapt.text import HashTextEncoder
from lightning_aapt.world.scene import WorldConfig, scripted_actions, simulate

FPS = 8  # toy clips play at 8 frames per second (one latent frame per frame)


@dataclass(frozen=True)
class ToyWorldSpec:
    """What `prepare toy-world` renders.

    Args:
        train_clips, val_clips: number of clips per split (different seeds).
        clip_frames: frames per clip.
        world: the world's parameters.
        codec_block: spatial factor of the exact block-DCT codec (latent channels = 3 * block^2).
        codec_path: a learned codec file (`prepare codec`, `lightning_aapt.codecs.learned`) to encode with instead
            of the block DCT (relative paths from the working directory); the manifest records its SHA-256.
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
    codec_path: str | None = None
    text_dim: int = 64
    text_tokens: int = 24
    persistence: float = 0.85
    seed: int = 0
    samples_per_shard: int = 100

    def codec(self) -> LatentCodec:
        """The codec that encodes the dataset (loads the learned codec's file)."""
        return ToyCodec(self.codec_block) if self.codec_path is None else LearnedCodec(self.codec_path)

    @property
    def codec_name(self) -> str:
        """The codec's name, without loading a learned codec's file."""
        return ToyCodec(self.codec_block).name if self.codec_path is None else LearnedCodec.name

    def text_encoder(self) -> HashTextEncoder:
        return HashTextEncoder(self.text_dim, self.text_tokens)

    @classmethod
    def from_manifest(cls, manifest: dict, where: str = "manifest.json") -> ToyWorldSpec:
        """The spec a dataset's manifest records (a toy-world dataset's)."""
        if "toy_world" not in manifest:
            raise DataError(f"{where}: not a toy-world dataset (its manifest has no 'toy_world' spec)")
        recorded = dict(manifest["toy_world"])
        return cls(**{**recorded, "world": WorldConfig(**recorded["world"])})

    def shapes(self) -> dict:
        """Shapes of one sample, as the manifest records them."""
        codec = self.codec()
        latent = self.world.size // codec.spatial_factor
        return {"latents": [self.clip_frames, codec.latent_channels, latent, latent],
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
    meta = {"fps": FPS, "caption": episode.caption, "source": "toy-world", "codec": spec.codec_name,
            "world": {"scene_seed": scene_seed, "action_seed": action_seed, "config": spec.world.to_dict()}}
    return episode.frames, actions, meta


def spec_from_manifest(directory: str | Path) -> ToyWorldSpec:
    """The spec the toy-world dataset in `directory` was made with (to re-render its ground truth)."""
    return ToyWorldSpec.from_manifest(read_manifest(directory), where=str(directory))
