"""The data contract: what a batch of clips is, what shape every clip has, and the manifest that says so.

Notation: B batch, F frames per clip, C latent channels, H/W latent height/width, L text tokens, Dt text width,
A control width.

A dataset is a directory of WebDataset shards beside a `manifest.json` (docs/architecture.md §6) recording the
clips' shapes, the codec that made the latents (and the per-channel statistics they are normalised with), the
text encoder and how the shards were made. Everything that reads a dataset outside the data module itself
(stages, callbacks, evaluation, sampling) goes through this module: `read_manifest`, `ClipShapes`,
`dataset_codec`; the data module (`datamodules/`) yields `VideoBatch`es.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from lightning_aapt.codecs import NormalizedCodec, codec_from_manifest
from lightning_aapt.errors import DataError

MANIFEST = "manifest.json"


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
    def from_manifest(cls, manifest: dict, where: str = MANIFEST) -> ClipShapes:
        shapes = manifest.get("shapes")
        if not isinstance(shapes, dict) or "latents" not in shapes or "text" not in shapes:
            raise DataError(f"{where}: no 'shapes' with 'latents' [F, C, H, W] and 'text' [L, Dt]; write the "
                            "dataset with `python -m lightning_aapt prepare`")
        f, c, h, w = shapes["latents"]
        controls = shapes.get("controls")
        return cls(f, c, h, w, *shapes["text"], controls[1] if controls else 0)


def read_manifest(directory: str | Path) -> dict:
    """The manifest of the dataset in `directory`."""
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no {MANIFEST} in {directory}: write shards with `python -m lightning_aapt "
                                "prepare` (it records shapes, codec and text encoder there)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def dataset_codec(directory: str | Path) -> NormalizedCodec:
    """The codec that decodes the dataset's (normalised) latents to video in [0, 1]."""
    return codec_from_manifest(read_manifest(directory))


def first_clips(batches: Iterable[VideoBatch], clips: int) -> list[VideoBatch]:
    """The batches of a (validation) loader until `clips` clips have been seen."""
    taken, seen = [], 0
    for batch in batches:
        taken.append(batch)
        seen += len(batch)
        if seen >= clips:
            break
    return taken
