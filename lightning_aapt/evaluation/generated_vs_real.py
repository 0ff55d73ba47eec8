"""Generated vs real clips: the Fréchet and kernel distances between their video features (FVD with I3D).

Notation: K clips, F frames, D feature width.

Protocol (recorded beside every number): each real validation clip is compared with the clip the generator
made from its conditioning (the caller's `generate`: a causal stage keeps the clip's first real frames and
streams the others with its text and actions), both decoded by the dataset's codec, clamped to [0, 1]
and fed to the extractor at the codec's resolution. The first K validation clips, in the validation
stream's fixed order, are used every time, so numbers compare across steps. Covariances are maximum-likelihood
(divided by K), as StyleGAN-V's FVD. The name follows the extractor: `fvd` and `kvd` only for I3D,
`fd_<extractor>` and `kd_<extractor>` otherwise.

Across ranks: each rank generates its share; the Fréchet distance is reduced by `FrechetDistance` itself
(float64 sums), the kernel distance needs every feature and takes them from `gather`.

Real features are cached on disk, keyed by the protocol and the SHA-256 of the dataset manifest, so they are
extracted once per dataset and protocol, not on every validation.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor

from lightning_aapt.codecs import LatentCodec
from lightning_aapt.data import MANIFEST, VideoBatch
from lightning_aapt.files import write_atomic
from lightning_aapt.metrics import FrechetDistance
from lightning_aapt.metrics.extractors import metric_name
from lightning_aapt.metrics.kernel import kernel_distance

Generate = Callable[[VideoBatch, int], Tensor]  # (batch, batch index) -> generated latents (B, F, C, H, W)
Gather = Callable[[Tensor], Tensor]  # (k, ...) on this rank -> (world * k, ...), rank-major


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lightning_aapt" / "real_features"


def feature_protocol(extractor, clips: int, real_video: Tensor, data_dir: str | Path) -> dict:
    """What makes a number reproducible, known once the first real clips (n, F, 3, S, S) are decoded."""
    return {"metric": metric_name(extractor), **extractor.protocol, "clips": clips,
            "clip_frames": real_video.shape[1], "resolution": list(real_video.shape[-2:]),
            "covariance": "maximum likelihood (divided by N), as StyleGAN-V",
            "data_manifest_sha256": hashlib.sha256((Path(data_dir) / MANIFEST).read_bytes()).hexdigest()}


def real_features_file(protocol: dict, cache_dir: str | Path | None) -> Path:
    """Where the real features of `protocol` are cached."""
    key = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir or default_cache_dir()) / f"{protocol['metric']}-{key}.pt"


@torch.no_grad()
def collect_features(generate: Generate, batches: list[VideoBatch], codec: LatentCodec, extractor, clips: int,
                     real: bool = True) -> tuple[Tensor, Tensor | None]:
    """Features (k, D) float64 of up to `clips` generated clips and, with `real`, of the real clips they were
    conditioned on."""
    fake, true = [], []
    for batch_idx, batch in enumerate(batches):
        n = min(len(batch), clips - sum(len(f) for f in fake))
        if n <= 0:
            break
        batch = batch.take(n)
        generated = generate(batch, batch_idx)  # (n, F, C, H, W)
        fake.append(extractor(codec.decode(generated.float().cpu()).clamp(0, 1)).double())
        if real:
            true.append(extractor(codec.decode(batch.latents.float().cpu()).clamp(0, 1)).double())
    if not fake:
        raise ValueError("the validation data gave no clips to compare")
    return torch.cat(fake), torch.cat(true) if real else None


def frechet_distance(real: Tensor, fake: Tensor, device: torch.device | str = "cpu") -> float:
    """FD of this rank's real and generated features (k, D), reduced across ranks by the metric itself."""
    fd = FrechetDistance().to(device)
    fd.update(real.to(device), real=True)
    fd.update(fake.to(device), real=False)
    return fd.compute().item()


def distances(fd: float, real: Tensor, fake: Tensor, name: str) -> dict[str, float]:
    """{fd name: `fd`, kd name: kernel distance[, kd name + "_std": its std over subsets]} of every rank's
    features (N, D)."""
    kd_name = "kvd" if name == "fvd" else name.replace("fd_", "kd_", 1)
    kd, kd_std = kernel_distance(real, fake)
    values = {name: fd, kd_name: kd}
    if kd_std == kd_std:  # NaN when every subset was the whole set
        values[f"{kd_name}_std"] = kd_std
    return values


def read_cached_features(cache: Path, clips: int) -> torch.Tensor | None:
    """The cached real features (clips, D), or None when there are none; a cache that cannot be read or holds
    another number of clips (a write cut short by an older version, a disk error) is said and recomputed."""
    if not cache.is_file():
        return None
    try:
        features = torch.load(cache, map_location="cpu", weights_only=True)
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != clips:
            raise ValueError(f"expected a ({clips}, D) tensor, got "
                             f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)}")
    except (OSError, RuntimeError, ValueError, EOFError) as err:
        warnings.warn(f"the real-feature cache {cache} cannot be used ({str(err).splitlines()[0]}): the real "
                      "features are computed again and the cache rewritten", stacklevel=2)
        return None
    return features


def generated_vs_real(generate: Generate, batches: Iterable[VideoBatch], codec: LatentCodec, extractor,
                      num_clips: int, data_dir: str | Path, cache_dir: str | Path | None = None,
                      gather: Gather | None = None, world_size: int = 1, rank: int = 0,
                      device: torch.device | str = "cpu") -> tuple[dict, dict]:
    """Generate the first `num_clips` validation clips (split across ranks) and compare them with the real ones.

    Returns (values, protocol): values as `distances`; protocol the settings that make the number reproducible.
    `gather` concatenates a per-rank tensor over ranks (None: one process); `device` is where the Fréchet
    statistics are reduced (the process group's device).
    """
    per_rank = math.ceil(num_clips / world_size)
    batches = list(batches)
    if not batches:
        raise ValueError("the validation data gave no clips to compare")
    first = codec.decode(batches[0].latents[:1].float().cpu())  # (1, F, 3, S, S): the protocol's clip shape
    protocol = feature_protocol(extractor, per_rank * world_size, first, data_dir)
    cache = real_features_file(protocol, cache_dir)
    cached = read_cached_features(cache, world_size * per_rank)  # read by every rank before any collective below,
    hit = cached is not None  # so no write can race it
    fake, real = collect_features(generate, batches, codec, extractor, per_rank, real=not hit)
    got = torch.tensor([len(fake)])
    used = int((gather(got) if gather is not None else got).min())  # every rank contributes the same count
    if used < 2:
        raise ValueError(f"FVD needs at least 2 validation clips per rank; got {used}: raise "
                         "trainer.limit_val_batches")
    if used < per_rank:
        warnings.warn(f"the distance asked for {num_clips} clips ({per_rank} per rank) but the validation data gave "
                      f"{used} per rank: the number is over {used * world_size} clips (recorded in its protocol); "
                      "lower num_clips (--num_clips), or in training raise trainer.limit_val_batches", stacklevel=2)
    fake = fake[:used]
    every_fake = gather(fake) if gather is not None else fake
    if hit:  # rank-major, as gathered: the first `used` clips of every rank
        cached = cached.reshape(world_size, per_rank, -1)
        real, every_real = cached[rank, :used], cached[:, :used].flatten(0, 1)
    else:
        real = real[:used]
        every_real = gather(real) if gather is not None else real
        if rank == 0 and used == per_rank:
            cache.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            torch.save(every_real, buffer)
            write_atomic(cache, buffer.getvalue())
    fd = frechet_distance(real, fake, device)
    protocol.update(clips=used * world_size, real_features_cache=str(cache))
    return distances(fd, every_real, every_fake, protocol["metric"]), protocol
