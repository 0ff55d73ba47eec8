"""`FVDCallback`: Fréchet (and kernel) distance between generated and real validation clips, every N validations.

Notation: K clips, F frames, D feature width.

Protocol (recorded beside every number): the generator is the module's `predict_step` — the EMA weights; a
causal stage keeps each clip's first real frames (`context_frames`) and streams the others with the clip's
text and actions — so a generated clip is compared with the real clip it was conditioned on, both decoded by the
dataset's codec, quantised to uint8 and fed to the extractor at the codec's resolution. The first K validation
clips (in the validation stream's fixed order) are used on every evaluation, so numbers compare across steps.
Covariances are maximum-likelihood (divided by K), as StyleGAN-V's FVD. The name follows the extractor: `fvd`
and `kvd` only for I3D, `fd_<extractor>` and `kd_<extractor>` otherwise.

Real features are cached on disk (`cache_dir`), keyed by the protocol and the SHA-256 of the dataset manifest,
so they are extracted once per dataset and protocol, not on every validation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

from datamodules.shards import MANIFEST, read_manifest
from lightning_aapt.codecs import LatentCodec, codec_from_manifest
from lightning_aapt.files import write_atomic
from lightning_aapt.metrics import FrechetDistance
from lightning_aapt.metrics.extractors import make_extractor, metric_name
from lightning_aapt.metrics.kernel import kernel_distance


def manifest_sha256(data_dir: str | Path) -> str:
    return hashlib.sha256((Path(data_dir) / MANIFEST).read_bytes()).hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lightning_aapt" / "real_features"


def take(batch, n: int):
    """The first n clips of a VideoBatch."""
    cut = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    for name, value in cut.items():
        if isinstance(value, (Tensor, list)):
            cut[name] = value[:n]
    return dataclasses.replace(batch, **cut)


def distances(real: Tensor, fake: Tensor, name: str) -> dict[str, float]:
    """{fd name: FD, kd name: kernel distance[, kd name + "_std": its std over subsets]} of features (N, D)."""
    fd = FrechetDistance()
    fd.update(real, real=True)
    fd.update(fake, real=False)
    kd_name = "kvd" if name == "fvd" else name.replace("fd_", "kd_", 1)
    kd, kd_std = kernel_distance(real, fake)
    values = {name: fd.compute().item(), kd_name: kd}
    if kd_std == kd_std:  # NaN when every subset was the whole set
        values[f"{kd_name}_std"] = kd_std
    return values


@torch.no_grad()
def generated_vs_real(module: L.LightningModule, batches: Iterable, codec: LatentCodec, extractor, num_clips: int,
                      data_dir: str | Path, cache_dir: str | Path | None = None,
                      gather: Callable[[Tensor], Tensor] | None = None, world_size: int = 1,
                      rank: int = 0) -> tuple[dict, dict]:
    """Generate the first `num_clips` validation clips (split across ranks) and compare them with the real ones.

    Returns (values, protocol): values as `distances`; protocol the settings that make the number reproducible.
    `gather` concatenates a per-rank (k, D) tensor over ranks (None: one process).
    """
    per_rank = math.ceil(num_clips / world_size)
    name = metric_name(extractor)
    real, fake, protocol, cache, hit = [], [], None, None, False
    for batch_idx, batch in enumerate(batches):
        n = min(len(batch), per_rank - sum(len(f) for f in fake))
        if n <= 0:
            break
        batch = take(batch, n)
        generated = module.predict_step(batch, batch_idx)["latents"]  # (n, F, C, H, W)
        real_video = codec.decode(batch.latents.float().cpu()).clamp(0, 1)  # (n, F, 3, S, S)
        if protocol is None:  # the cache key is known once the clip shape is
            protocol = {"metric": name, **extractor.protocol, "clips": per_rank * world_size,
                        "clip_frames": real_video.shape[1], "resolution": list(real_video.shape[-2:]),
                        "covariance": "maximum likelihood (divided by N), as StyleGAN-V",
                        "data_manifest_sha256": manifest_sha256(data_dir)}
            key = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:20]
            cache = Path(cache_dir or default_cache_dir()) / f"{name}-{key}.pt"
            hit = cache.is_file()  # checked by every rank before any collective below, so no write can race it
        fake.append(extractor(codec.decode(generated.float().cpu()).clamp(0, 1)).double())
        if not hit:
            real.append(extractor(real_video).double())
    got = torch.tensor([sum(len(f) for f in fake)])
    used = int((gather(got) if gather is not None else got).min())  # every rank contributes the same count
    if used < 2:
        raise ValueError(f"FVD needs at least 2 validation clips per rank; got {used}: raise "
                         "trainer.limit_val_batches")
    if used < per_rank:
        warnings.warn(f"FVD asked for {num_clips} clips ({per_rank} per rank) but the validation data gave {used} "
                      f"per rank: the number is over {used * world_size} clips (recorded in its protocol); raise "
                      "trainer.limit_val_batches or lower num_clips", stacklevel=2)
    fake_features = torch.cat(fake)[:used]  # (used, D)
    fake_features = gather(fake_features) if gather is not None else fake_features
    if hit:  # rank-major, as gathered: keep the first `used` clips of every rank
        cached = torch.load(cache, map_location="cpu", weights_only=True)
        real_features = cached.reshape(world_size, per_rank, -1)[:, :used].flatten(0, 1)
    else:
        real_features = torch.cat(real)[:used]
        real_features = gather(real_features) if gather is not None else real_features
        if rank == 0 and used == per_rank:
            cache.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            torch.save(real_features, buffer)
            write_atomic(cache, buffer.getvalue())
    protocol.update(clips=used * world_size, generator_steps_per_frame=getattr(module, "sample_steps", None),
                    conditioning=f"first {getattr(module, 'context_frames', 1)} real frames (context), text and "
                                 "actions of each validation clip; EMA weights")
    protocol["real_features_cache"] = str(cache)
    return distances(real_features, fake_features, name), protocol


class FVDCallback(L.Callback):
    """Every `every_n_validations` validations, log `val/fvd` (I3D) or `val/fd_<extractor>` with the kernel
    distance beside it, and write the protocol to `<log_dir>/fd_protocol.json` and TensorBoard text.

    Args:
        every_n_validations: evaluate after validations n, 2n, ... (sanity checks excluded; n = 2 with 4
            validations evaluates at the middle and the end).
        num_clips: generated and real clips compared (split across ranks).
        extractor: "rand3d" (default, offline) or "i3d" (needs `i3d_path`).
        i3d_path: local file of the I3D weights (StyleGAN-V TorchScript or InceptionI3d state dict).
        cache_dir: where real features are cached (default `$XDG_CACHE_HOME/lightning_aapt/real_features`).
    """

    def __init__(self, every_n_validations: int = 1, num_clips: int = 64, extractor: str = "rand3d",
                 i3d_path: str | None = None, cache_dir: str | None = None) -> None:
        self.every_n_validations, self.num_clips, self.cache_dir = every_n_validations, num_clips, cache_dir
        self.extractor = make_extractor(extractor, i3d_path, flag="FVDCallback.i3d_path")
        self._batches: list = []
        self._validations = 0

    def on_validation_epoch_start(self, trainer, module) -> None:
        self._batches = []

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        per_rank = math.ceil(self.num_clips / trainer.world_size)
        if not trainer.sanity_checking and sum(len(b) for b in self._batches) < per_rank:
            self._batches.append(batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if self._validations % self.every_n_validations:
            return
        self.extractor.to(module.device)

        def gather(x: Tensor) -> Tensor:  # (k, ...) per rank -> (world k, ...), rank-major
            return module.all_gather(x.to(module.device)).flatten(0, 1).cpu()

        data_dir = trainer.datamodule.data_dir
        codec = codec_from_manifest(read_manifest(data_dir))
        values, protocol = generated_vs_real(module, self._batches, codec, self.extractor, self.num_clips,
                                             data_dir, self.cache_dir, gather if trainer.world_size > 1 else None,
                                             trainer.world_size, trainer.global_rank)
        self._batches = []
        for key, value in values.items():
            module.log(f"val/{key}", value, sync_dist=False, rank_zero_only=True)
        if trainer.is_global_zero and trainer.log_dir:
            write_atomic(Path(trainer.log_dir) / "fd_protocol.json", json.dumps(protocol, indent=2).encode())
            writer = getattr(trainer.logger, "experiment", None)
            if hasattr(writer, "add_text"):
                writer.add_text(f"val/{protocol['metric']}_protocol", "\n".join(
                    f"- {k}: {v}" for k, v in protocol.items()), trainer.global_step)
