"""The toy world as a dataset: what `prepare toy-world` renders (`ToyWorldSpec`), which seeds make each clip, and
the spec read back from a dataset's manifest, so evaluation can re-render any clip's ground truth for any actions.
Writing the shards is `datamodules/toy_world.py`'s job."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from lightning_aapt.codecs import LatentCodec, LearnedCodec, ToyCodec
from lightning_aapt.codecs.learned import AutoencoderConfig, CodecTraining
from lightning_aapt.data import DataError, Manifest, read_manifest
from lightning_aapt.errors import ConfigError
from lightning_aapt.text import HashTextEncoder
from lightning_aapt.world.scene import Episode, WorldConfig, scripted_actions, simulate


@dataclass(frozen=True)
class CodecRecipe:
    """How to train a toy world's learned codec (`codecs/learned.py`) on its own training clips: what `prepare
    codec` takes as flags, and what a spec carries so that rendering it trains its codec first when `codec_path`
    does not exist yet.

    Args:
        model: the autoencoder's shape (spatial factor, latent channels, widths).
        training: steps, batch size, learning rate, body weight, latent noise, seed.
        every: keep one frame in `every` of each training clip (neighbouring frames are nearly alike).
    """

    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    training: CodecTraining = field(default_factory=CodecTraining)
    every: int = 2

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"codec_recipe.every must be >= 1, got {self.every}")

    @classmethod
    def from_dict(cls, recorded: dict) -> CodecRecipe:
        return cls(AutoencoderConfig(**recorded["model"]), CodecTraining(**recorded["training"]), recorded["every"])


@dataclass(frozen=True)
class ToyWorldSpec:
    """What `prepare toy-world` renders.

    Args:
        train_clips, val_clips: number of clips per split (different seeds).
        clip_frames: frames per clip.
        fps: the world's frame rate: the pace at which its clips play and `play` streams it (one latent frame per
            frame); the world's speeds are per frame, so a faster world with the same speeds per second moves less
            between frames.
        world: the world's parameters.
        codec_block: spatial factor of the exact block-DCT codec (latent channels = 3 * block^2).
        codec_path: a learned codec file (`prepare codec`, `lightning_aapt.codecs.learned`) to encode with instead
            of the block DCT (relative paths from the working directory); the manifest records its SHA-256.
        codec_recipe: how to train the codec at `codec_path` when that file does not exist yet (rendering the
            dataset then trains it first, on this spec's training clips); an existing file must have been made
            with the recipe's model shape.
        text_dim, text_tokens: toy text encoder width and length.
        persistence: probability that the scripted policy keeps its action from one frame to the next.
        seed: base seed; clip i of a split uses scene and action seeds derived from it.
        samples_per_shard: clips per tar shard.
    """

    train_clips: int = 1000
    val_clips: int = 64
    clip_frames: int = 16
    fps: float = 8.0
    world: WorldConfig = field(default_factory=WorldConfig)
    codec_block: int = 4
    codec_path: str | None = None
    codec_recipe: CodecRecipe | None = None
    text_dim: int = 64
    text_tokens: int = 24
    persistence: float = 0.85
    seed: int = 0
    samples_per_shard: int = 100

    def __post_init__(self) -> None:
        for name, least in (("train_clips", 1), ("val_clips", 1), ("clip_frames", 2), ("samples_per_shard", 1)):
            if getattr(self, name) < least:
                raise ConfigError(f"a toy world's {name} must be >= {least}, got {getattr(self, name)}")
        if not self.fps > 0:
            raise ValueError(f"a toy world's fps must be > 0, got {self.fps}")
        if self.codec_recipe is not None and self.codec_path is None:
            raise ValueError("a toy world's codec_recipe needs a codec_path: the file its codec is trained into")
        if self.codec_recipe is not None and self.world.size % self.codec_recipe.model.spatial_factor:
            raise ValueError(f"codec_recipe.model.spatial_factor {self.codec_recipe.model.spatial_factor} must divide "
                             f"the world's {self.world.size}-px frames")

    def codec(self) -> LatentCodec:
        """The codec that encodes the dataset (loads the learned codec's file, checked against the recipe)."""
        if self.codec_path is None:
            return ToyCodec(self.codec_block)
        codec = LearnedCodec(self.codec_path)
        if self.codec_recipe is not None and codec.model.cfg != self.codec_recipe.model:
            raise DataError(f"codec_path {self.codec_path} holds a codec of shape {codec.model.cfg}, but the world's "
                            f"codec_recipe asks for {self.codec_recipe.model}: move the file away to retrain it, or "
                            "fix the recipe")
        return codec

    def latent_shape(self) -> tuple[int, int]:
        """(latent channels, spatial factor) of the codec, without loading or training a learned codec's file
        where its recipe says them."""
        if self.codec_path is None:
            codec = ToyCodec(self.codec_block)
            return codec.latent_channels, codec.spatial_factor
        if self.codec_recipe is not None:
            return self.codec_recipe.model.latent_channels, self.codec_recipe.model.spatial_factor
        codec = LearnedCodec(self.codec_path)
        return codec.latent_channels, codec.spatial_factor

    @property
    def codec_name(self) -> str:
        """The codec's name, without loading a learned codec's file."""
        return ToyCodec(self.codec_block).name if self.codec_path is None else LearnedCodec.name

    def text_encoder(self) -> HashTextEncoder:
        return HashTextEncoder(self.text_dim, self.text_tokens)

    @classmethod
    def from_manifest(cls, manifest: Manifest, where: str = "manifest.json") -> ToyWorldSpec:
        """The spec a dataset's manifest records (a toy-world dataset's)."""
        if manifest.toy_world is None:
            raise DataError(f"{where}: not a toy-world dataset (its manifest has no 'toy_world' spec)")
        recorded = manifest.toy_world
        world = recorded.get("world") if isinstance(recorded, dict) else None
        if not isinstance(world, dict):
            raise DataError(f"{where}: toy_world must be an object of the world's settings with its 'world', got "
                            f"{str(recorded)[:80]}")
        for key, settings, known in (("toy_world", recorded, cls), ("toy_world.world", world, WorldConfig)):
            unknown = sorted(set(settings) - {f.name for f in fields(known)})
            if unknown:
                raise DataError(f"{where}: {key} records settings this version does not know ({unknown}): the "
                                "dataset was written by a newer version; update, or write it again")
        recipe = recorded.get("codec_recipe")
        try:
            return cls(**{**recorded, "world": WorldConfig(**world),
                          "codec_recipe": None if recipe is None else CodecRecipe.from_dict(recipe)})
        except (TypeError, ValueError) as err:
            raise DataError(f"{where}: toy_world cannot be built ({err})") from None

    def shapes(self) -> dict:
        """Shapes of one sample, as the manifest records them."""
        channels, factor = self.latent_shape()
        latent = self.world.size // factor
        return {"latents": [self.clip_frames, channels, latent, latent],
                "text": [self.text_tokens, self.text_dim], "controls": [self.clip_frames, self.world.action_dim]}


def clip_seeds(spec: ToyWorldSpec, split: str, index: int) -> tuple[int, int]:
    """(scene seed, action seed) of clip `index` of `split`: disjoint between splits, stable across runs."""
    base = np.random.SeedSequence([spec.seed, {"train": 0, "val": 1}[split], index]).generate_state(2)
    return int(base[0]), int(base[1])


def render_episode(spec: ToyWorldSpec, split: str, index: int, layers: bool = False) -> tuple[Episode, np.ndarray]:
    """Clip `index` of `split` as the world's episode (with each frame's layers if `layers`) and its actions (F, 2)
    float32."""
    scene_seed, action_seed = clip_seeds(spec, split, index)
    actions = scripted_actions(action_seed, spec.clip_frames, spec.persistence)
    return simulate(scene_seed, actions, spec.world, layers=layers), actions


def render_clip(spec: ToyWorldSpec, split: str, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Frames (F, S, S, 3) uint8, actions (F, 2) float32 and metadata of one clip."""
    scene_seed, action_seed = clip_seeds(spec, split, index)
    episode, actions = render_episode(spec, split, index)
    meta = {"fps": spec.fps, "caption": episode.caption, "source": "toy-world", "codec": spec.codec_name,
            "world": {"scene_seed": scene_seed, "action_seed": action_seed, "config": spec.world.to_dict()}}
    return episode.frames, actions, meta


def spec_from_manifest(directory: str | Path) -> ToyWorldSpec:
    """The spec the toy-world dataset in `directory` was made with (to re-render its ground truth)."""
    return ToyWorldSpec.from_manifest(read_manifest(directory), where=str(Path(directory) / "manifest.json"))
