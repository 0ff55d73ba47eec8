"""The data contract: what a batch of clips is, what shape every clip has, and the manifest that says so.

Notation: B batch, F frames per clip, C latent channels, H/W latent height/width, L text tokens, Dt text width,
A control width.

A dataset is a directory of WebDataset shards beside a `manifest.json` (docs/architecture.md §6) recording the
clips' shapes, the codec that made the latents (and the per-channel statistics they are normalised with), the
text encoder and how the shards were made. Everything that reads a dataset outside the data module itself
(stages, callbacks, evaluation, sampling) goes through this module: `read_manifest` (a typed `Manifest`),
`ClipShapes`, `dataset_codec`; the data module (`datamodules/`) yields `VideoBatch`es.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from lightning_aapt.codecs import KNOWN_CODECS, LatentStats, NormalizedCodec, codec_from_name, known_codec
from lightning_aapt.errors import DataError

MANIFEST = "manifest.json"
MIN_STD = 1e-8  # the least latent_stats.std: latents are divided by it


@dataclass
class VideoBatch:
    """A batch of clips (typed; Lightning moves its tensors to the device)."""

    latents: Tensor  # (B, F, C, H, W) float32, normalised per channel
    text: Tensor  # (B, L, Dt) float32
    controls: Tensor | None  # (B, F, A) float32
    keys: list[str] = field(default_factory=list)  # "shard-url#sample-key"
    meta: list[dict] = field(default_factory=list)
    skipped: int = 0  # bad samples skipped since the previous batch (policy "skip")

    def __len__(self) -> int:
        return self.latents.shape[0]

    def take(self, n: int) -> VideoBatch:
        """The first `n` clips."""
        cut = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: v[:n] for k, v in cut.items() if isinstance(v, (Tensor, list))})


@dataclass(frozen=True)
class ClipShapes:
    """What every sample must hold (from the manifest, or from the toy spec before it is rendered)."""

    clip_frames: int
    latent_channels: int
    height: int
    width: int
    text_tokens: int
    text_dim: int
    control_dim: int  # 0 = the data has no controls

    @classmethod
    def from_record(cls, shapes: dict, where: str = MANIFEST) -> ClipShapes:
        """The shapes a manifest records (`shapes`: latents [F, C, H, W], text [L, Dt], controls [F, A] or none)."""
        if not isinstance(shapes, dict) or "latents" not in shapes or "text" not in shapes:
            raise DataError(f"{where}: no 'shapes' with 'latents' [F, C, H, W] and 'text' [L, Dt]; write the "
                            "dataset with `python -m lightning_aapt prepare`")
        f, c, h, w = shapes["latents"]  # checked by check_manifest
        controls = shapes.get("controls")
        return cls(f, c, h, w, *shapes["text"], controls[1] if controls else 0)

    @property
    def model_dims(self) -> dict[str, int]:
        """The backbone fields the data decides: latent channels, text width, control width."""
        return {"latent_channels": self.latent_channels, "text_dim": self.text_dim, "control_dim": self.control_dim}


@dataclass(frozen=True)
class Manifest:
    """A dataset's `manifest.json`, checked field by field (`check_manifest`) and read by name: what its samples
    hold, how its latents decode, its splits, its frame rate and, for the toy world, the world that made it."""

    shapes: ClipShapes
    codec: dict  # the codec's name and what building it needs (path, sha256; first_frame_alone for causal VAEs)
    splits: dict  # {"train": {"clips": N, "shards": [...]}, "val": ...}
    fps: float | None = None
    latent_stats: dict | None = None  # per-channel mean and std of the raw latents (None: not normalised)
    text_encoder: dict | None = None
    toy_world: dict | None = None  # the toy world's spec, for a dataset it rendered (`ToyWorldSpec.from_manifest`)
    record: dict = field(default_factory=dict, repr=False, compare=False)  # the JSON as written

    @classmethod
    def from_record(cls, record, where: str = MANIFEST) -> Manifest:
        check_manifest(record, where)
        return cls(ClipShapes.from_record(record["shapes"], where), record["codec"], record.get("splits") or {},
                   record.get("fps"), record.get("latent_stats"), record.get("text_encoder"), record.get("toy_world"),
                   record)

    def stats(self) -> LatentStats:
        """The per-channel latent statistics the data module normalises with; identity for a dataset without."""
        if self.latent_stats is None:
            return LatentStats.identity(self.shapes.latent_channels)
        return LatentStats.from_dict(self.latent_stats)  # checked by check_manifest

    def normalized_codec(self) -> NormalizedCodec:
        """The codec that maps pixels to the latents the data module serves (normalised per `latent_stats`) and
        back."""
        codec = codec_from_name(self.codec["name"], self.codec.get("path"), self.codec.get("sha256"))
        return NormalizedCodec(codec, self.stats())


def read_manifest(directory: str | Path, flag: str | None = None) -> Manifest:
    """The manifest of the dataset in `directory`, its fields checked (`check_manifest`); `flag`: the command's
    flag that named the folder (a command streaming a checkpoint on it)."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        if flag is not None:
            raise DataError(f"{flag} {directory}: no {MANIFEST} there; name the dataset the checkpoint was trained "
                            "on (the quick start's is data/toy32)") from None
        raise DataError(f"{directory}: no {MANIFEST} there: write shards with `python -m lightning_aapt prepare` (it "
                        "records shapes, codec and text encoder there)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON: {err}") from None
    return Manifest.from_record(manifest, str(path))


def check_manifest(manifest, where: str) -> None:
    """Refuse, naming the file and the field, a manifest whose shapes, statistics, splits or codec cannot describe a
    dataset (as an edited or foreign one may): a wrong one otherwise surfaces as a traceback far from its cause."""
    if not isinstance(manifest, dict):
        raise DataError(f"{where}: expected a JSON object (a dataset's manifest), got {type(manifest).__name__}")
    shapes = manifest.get("shapes")
    if not isinstance(shapes, dict) or "latents" not in shapes or "text" not in shapes:
        raise DataError(f"{where}: no 'shapes' with 'latents' [F, C, H, W] and 'text' [L, Dt]; write the "
                        "dataset with `python -m lightning_aapt prepare`")
    for key, size in (("latents", 4), ("text", 2), ("controls", 2)):
        value = shapes.get(key)
        if key == "controls" and value is None:
            continue
        if not (isinstance(value, list) and len(value) == size
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
            raise DataError(f"{where}: shapes.{key} must be {size} positive integers, got {value!r}")
    channels = shapes["latents"][1]
    stats = manifest.get("latent_stats")
    if stats is not None:
        for key in ("mean", "std"):
            values = stats.get(key) if isinstance(stats, dict) else None
            if not (isinstance(values, list) and len(values) == channels and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
                raise DataError(f"{where}: latent_stats.{key} must be {channels} finite numbers (one per latent "
                                f"channel of shapes.latents), got {str(values)[:80]}")
        if min(stats["std"]) < MIN_STD:
            raise DataError(f"{where}: latent_stats.std must be at least {MIN_STD:g} in every channel (latents are "
                            f"divided by it: a smaller one makes them overflow), got {min(stats['std'])}")
    splits = manifest.get("splits")
    if splits is not None:
        for split, record in (splits.items() if isinstance(splits, dict) else [("splits", splits)]):
            if not (isinstance(record, dict) and isinstance(record.get("shards"), list)
                    and all(isinstance(name, str) for name in record["shards"])):
                raise DataError(f"{where}: splits.{split} must be {{'clips': N, 'shards': [file names]}}, got "
                                f"{str(record)[:80]}")
    codec = manifest.get("codec")
    if not (isinstance(codec, dict) and isinstance(codec.get("name"), str)):
        raise DataError(f"{where}: codec must be an object with the codec's 'name', got {str(codec)[:80]}")
    if not known_codec(codec["name"]):
        raise DataError(f"{where}: codec.name {codec['name']!r}: {KNOWN_CODECS}")


def dataset_codec(directory: str | Path) -> NormalizedCodec:
    """The codec that decodes the dataset's (normalised) latents to video in [0, 1]."""
    return read_manifest(directory).normalized_codec()


def first_clips(batches: Iterable[VideoBatch], clips: int) -> list[VideoBatch]:
    """The batches of a (validation) loader until `clips` clips have been seen."""
    taken, seen = [], 0
    for batch in batches:
        taken.append(batch)
        seen += len(batch)
        if seen >= clips:
            break
    return taken
