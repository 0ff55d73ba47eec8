"""`WebVideoDataModule`: streams clips of precomputed latents from WebDataset shards.

Notation: B batch, F frames per training clip, C latent channels, H/W latent height/width, L text tokens,
Dt text width, A control width.

Splitting is explicit: shards are first divided between ranks (rank r takes shards r, r + world, ...), then
between the data-loader workers of a rank, so no two processes ever read the same shard and DDP ranks see
disjoint samples, also in the resampled (infinite, with replacement) training stream, which draws shards
at random from its own subset.

Determinism and exact resume: a stream's shard draws, shuffle-buffer picks and random crops come from RNGs
seeded by (data seed, rank, worker, pass) only — never from torch's global RNG — so the training stream is a fixed
sequence. Checkpoints record how many training batches were consumed (`state_dict`); on resume every worker
replays its share of them, reading those samples but not decoding them, and the run continues with exactly the
batches the uninterrupted run would have seen. The replay re-reads the consumed samples' bytes (time grows with
the run's length; `resume="approximate"` instead starts a fresh deterministic stream at once). One exception: a
sample dropped as bad (`bad_samples="skip"`) is replayed as if it had been used, shifting the stream by one.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import random
import sys
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from datamodules.shards import dataset_files
from datamodules.stoppable import StoppableLoader
from datamodules.toy_world import prepare_toy_world
from lightning_aapt.codecs import LatentStats, NormalizedCodec
from lightning_aapt.data import MANIFEST, ClipShapes, DataError, VideoBatch, dataset_codec, read_manifest
from lightning_aapt.errors import ConfigError
from lightning_aapt.world.dataset import ToyWorldSpec


def _load_npy(sample: dict, name: str, where: str) -> np.ndarray:
    if name not in sample:
        raise DataError(f"{where}: no {name} in the sample (it has {sorted(k for k in sample if k[0] != '_')})")
    try:
        return np.load(io.BytesIO(sample[name]), allow_pickle=False)
    except Exception as err:
        raise DataError(f"{where}: {name} is not a readable .npy array ({err})") from err


def decode_clip(sample: dict, shapes: ClipShapes, num_frames: int, start: int | None,
                rng: random.Random, stats: LatentStats | None = None) -> dict:
    """Check and decode one raw sample; crop `num_frames` frames (at `start`, or at random when None);
    latents normalised per channel with `stats` (the manifest's `latent_stats`) when given."""
    where = f"shard {sample.get('__url__', '?')}, sample {sample.get('__key__', '?')}"
    latents = _load_npy(sample, "latents.npy", where)
    expected = (shapes.latent_channels, shapes.height, shapes.width)
    if latents.ndim != 4 or latents.shape[1:] != expected or latents.shape[0] < num_frames:
        raise DataError(f"{where}: latents.npy has shape {latents.shape}, expected (F >= {num_frames}, "
                        f"{expected[0]}, {expected[1]}, {expected[2]}) from the manifest and model.num_frames")
    if not np.isfinite(latents).all():
        raise DataError(f"{where}: latents.npy holds NaN or Inf values")
    text = _load_npy(sample, "text.npy", where)
    if text.ndim != 2 or text.shape[1] != shapes.text_dim or text.shape[0] > shapes.text_tokens:
        raise DataError(f"{where}: text.npy has shape {text.shape}, expected (L <= {shapes.text_tokens}, "
                        f"{shapes.text_dim})")
    if not np.isfinite(text).all():
        raise DataError(f"{where}: text.npy holds NaN or Inf values")
    if text.shape[0] < shapes.text_tokens:  # stored up to the prompt's length: zero rows after it, as encoded
        text = np.pad(text, ((0, shapes.text_tokens - text.shape[0]), (0, 0)))
    controls = None
    if shapes.control_dim:
        controls = _load_npy(sample, "controls.npy", where)
        if controls.shape != (latents.shape[0], shapes.control_dim) or not np.isfinite(controls).all():
            raise DataError(f"{where}: controls.npy has shape {controls.shape} (or non-finite values), expected "
                            f"finite ({latents.shape[0]}, {shapes.control_dim})")
    first = rng.randrange(latents.shape[0] - num_frames + 1) if start is None else start
    crop = slice(first, first + num_frames)
    meta = json.loads(sample["json"]) if "json" in sample else {}
    meta["crop_start"] = first
    clip = latents[crop].astype(np.float32)  # (F, C, H, W)
    if stats is not None:
        clip = stats.normalize(clip)
    return {"latents": torch.from_numpy(clip),
            "text": torch.from_numpy(text.astype(np.float32)),
            "controls": None if controls is None else torch.from_numpy(controls[crop].astype(np.float32)),
            "key": f"{sample.get('__url__')}#{sample.get('__key__')}", "meta": meta}


class ClipStream(IterableDataset):
    """Clips from a rank's share of the shards (see the module docstring for the splitting rules).

    Args:
        urls: shard paths or `pipe:` commands.
        shapes: what each sample must hold.
        num_frames: F, frames cropped from each clip.
        resampled: infinite stream drawing shards with replacement (training); else one pass (validation).
        shuffle: shuffle the shard order and, with a buffer of `shuffle_buffer` clips, the clips.
        random_crop: crop at a random start; else at frame 0.
        bad_samples: "fail" raises a `DataError` naming the shard; "skip" drops the sample or the rest of a
            corrupt shard and counts it (`VideoBatch.skipped`), up to `bad_sample_limit` in a row.
        bad_sample_limit: with "skip", this many bad samples in a row (per worker), or a one-pass stream that ends
            with none good, stop the stream with a `DataError` naming how many were skipped and the first of them.
        rank, world_size: this process's place among the data-parallel ranks.
        seed: seeds every RNG of the stream (with rank, worker and pass).
        skip_batches, batch_size: batches of this rank already consumed (resume); each worker skips its share,
            `batch_size` clips per batch, without decoding them.
        epoch: pass number of a one-pass stream (a new shuffle each pass).
        stats: per-channel latent statistics; latents are served normalised with them.
    """

    def __init__(self, urls: list[str], shapes: ClipShapes, num_frames: int, resampled: bool, shuffle: bool,
                 random_crop: bool, bad_samples: Literal["fail", "skip"] = "fail", shuffle_buffer: int = 64,
                 rank: int = 0, world_size: int = 1, seed: int = 0, skip_batches: int = 0, batch_size: int = 1,
                 epoch: int = 0, stats: LatentStats | None = None, bad_sample_limit: int = 64) -> None:
        if len(urls) < world_size:
            raise DataError(f"{len(urls)} shard(s) cannot be split over {world_size} ranks: write at least one "
                            "shard per rank (prepare --samples-per-shard smaller)")
        self.urls, self.shapes, self.num_frames = urls, shapes, num_frames
        self.resampled, self.shuffle, self.random_crop = resampled, shuffle, random_crop
        self.bad_samples, self.shuffle_buffer, self.bad_sample_limit = bad_samples, shuffle_buffer, bad_sample_limit
        self.rank, self.world_size = rank, world_size
        self.seed, self.skip_batches, self.batch_size, self.epoch = seed, skip_batches, batch_size, epoch
        self.stats = stats

    def worker_shards(self) -> list[str]:
        """This rank's shards, then this worker's share of them.

        A one-pass stream splits strictly (a worker may get none, and then yields nothing), so every clip is
        read once; a resampled stream with fewer shards than workers lets each worker draw from all of them.
        """
        shards = self.urls[self.rank :: self.world_size]
        worker, workers = self._worker()
        if workers > 1 and (not self.resampled or len(shards) >= workers):
            shards = shards[worker::workers]
        return shards

    def _worker(self) -> tuple[int, int]:
        """(stream id, number of workers) of this data-loader worker. A resumed loader starts its round robin
        at worker 0, but the next batch is the one stream (skip_batches mod workers) would have made, so worker
        w continues stream (w + skip_batches) mod workers."""
        info = get_worker_info()
        if info is None:
            return 0, 1
        return (info.id + self.skip_batches) % info.num_workers, info.num_workers

    def __iter__(self):
        worker, workers = self._worker()
        rng = random.Random(f"{self.seed}/{self.rank}/{worker}/{self.epoch}")  # shard draws and shuffling
        # DataLoader workers hand out batches in turn: worker w made batches w, w + workers, ...
        skip = len(range(worker, self.skip_batches, workers)) * self.batch_size
        shards = self.worker_shards()
        if not shards:
            return
        self._skipped, self._good = 0, 0  # skipped since the last clip served; clips served
        self._bad_in_a_row, self._first_bad = 0, []  # bad samples since the last good one, and the first three
        emitted = 0
        buffer: list[dict] = []
        for raw in self._raw_samples(shards, rng):
            if not self.shuffle:
                chosen = raw
            else:
                buffer.append(raw)
                if len(buffer) < self.shuffle_buffer:
                    continue
                chosen = buffer.pop(rng.randrange(len(buffer)))
            clip = self._emit(chosen, emitted, worker, skip)
            emitted += 1
            if clip is not None:
                yield clip
        rng.shuffle(buffer)
        for raw in buffer:
            clip = self._emit(raw, emitted, worker, skip)
            emitted += 1
            if clip is not None:
                yield clip
        if self._bad_in_a_row and not self._good:
            raise self._too_many_bad(f"a pass over {len(shards)} shard(s) found no good sample")

    def _raw_samples(self, shards: list[str], rng: random.Random):
        """Undecoded samples of the shards in stream order; an unreadable shard raises or is counted."""
        for url in self._shard_order(shards, rng):
            try:
                yield from wds.tarfile_samples([{"url": url}])
            except Exception as err:
                bad = DataError(f"shard {url} is unreadable or truncated: {type(err).__name__}: {err}")
                if self.bad_samples == "fail":
                    raise bad from err
                self._skip(bad)

    def _emit(self, raw: dict, index: int, worker: int, skip: int) -> dict | None:
        """Decode the index-th sample of this worker's stream (None: replayed on resume, or bad and skipped).
        Its crop comes from its own RNG, so replaying need not decode."""
        if index < skip:
            return None
        crop_rng = random.Random(f"{self.seed}/{self.rank}/{worker}/{self.epoch}/{index}")
        try:
            clip = decode_clip(raw, self.shapes, self.num_frames, None if self.random_crop else 0, crop_rng,
                               self.stats)
        except DataError as bad:
            if self.bad_samples == "fail":
                raise
            self._skip(bad)
            return None
        clip["skipped"], self._skipped = self._skipped, 0
        self._good, self._bad_in_a_row, self._first_bad = self._good + 1, 0, []
        return clip

    def _skip(self, bad: DataError) -> None:
        """Count a skipped sample (or shard); too many in a row end the stream."""
        self._skipped += 1
        self._bad_in_a_row += 1
        if len(self._first_bad) < 3:
            self._first_bad.append(str(bad)[:160])
        if self._bad_in_a_row >= self.bad_sample_limit:
            raise self._too_many_bad(f"{self._bad_in_a_row} bad samples in a row "
                                     f"(data.bad_sample_limit={self.bad_sample_limit})")

    def _too_many_bad(self, what: str) -> DataError:
        first = "; ".join(self._first_bad)
        return DataError(f"data.bad_samples=skip: {what}, skipping stopped. First: {first}. Fix or remove those "
                         "shards (data.train_shards / val_shards select others)")

    def _shard_order(self, shards: list[str], rng: random.Random):
        if self.resampled:
            while True:
                yield rng.choice(shards)
        order = list(shards)
        if self.shuffle:
            rng.shuffle(order)
        yield from order


def render_notice(data_dir: Path, spec: ToyWorldSpec) -> str:
    """What `prepare_data` says before rendering the toy world into `data_dir`; refuses a folder that holds files
    other than an unfinished dataset's (rendering replaces them)."""
    dataset_files(data_dir, "data.init_args.data_dir")
    siblings = [manifest.parent.name for manifest in data_dir.parent.glob(f"*/{MANIFEST}")]
    close = difflib.get_close_matches(data_dir.name, siblings, n=1, cutoff=0.6)
    hint = f"; did you mean {data_dir.parent / close[0]} (a dataset)?" if close else ""
    return (f"[data] data.init_args.data_dir={data_dir} holds no dataset ({MANIFEST} missing): rendering "
            f"data.toy_world there ({spec.train_clips} + {spec.val_clips} clips){hint}")


def check_same_world(data_dir: Path, spec: ToyWorldSpec) -> None:
    """Refuse a `data_dir` holding a toy world rendered with other physics or looks than `data.toy_world` (as a
    folder written by an earlier version of the same world file is): training on it would be training on another
    world without a word. Fields the recorded spec predates read as their defaults."""
    manifest = read_manifest(data_dir)
    if manifest.toy_world is None:
        return  # a dataset of other videos: data.toy_world only says what to render when there is none
    recorded = ToyWorldSpec.from_manifest(manifest, str(data_dir / MANIFEST)).world.to_dict()
    wanted = spec.world.to_dict()
    changed = [f"{key} {recorded[key]} -> {wanted[key]}" for key in wanted if recorded.get(key) != wanted[key]]
    if changed:
        raise ConfigError(f"data.init_args.data_dir={data_dir} holds a toy world rendered with other settings than "
                          f"data.toy_world ({', '.join(changed)}): move that folder away (it is rendered again) or "
                          "name another data_dir")


def collate_clips(clips: list[dict]) -> VideoBatch:
    controls = [c["controls"] for c in clips]
    return VideoBatch(
        latents=torch.stack([c["latents"] for c in clips]),
        text=torch.stack([c["text"] for c in clips]),
        controls=None if controls[0] is None else torch.stack(controls),
        keys=[c["key"] for c in clips], meta=[c["meta"] for c in clips],
        skipped=sum(c["skipped"] for c in clips),
    )


class WebVideoDataModule(L.LightningDataModule):
    """Clips of precomputed video latents from WebDataset shards (docs/architecture.md §6).

    Args:
        data_dir: directory of the shards and their manifest.json (shapes, codec, text encoder).
        train_shards, val_shards: shard patterns relative to `data_dir` or absolute, brace-expanded, `::`
            separating several; `pipe:` URLs work too. None: the shards listed in the manifest.
        num_frames: F, frames cropped from each clip (at random for training, from frame 0 for validation and for
            data whose first latent is an image latent: `first_frame_alone`).
        batch_size: clips per batch and rank.
        num_workers: data-loader workers per rank.
        shuffle_buffer: clips held for shuffling the training stream.
        bad_samples: "fail" (default) stops with an error naming the shard and sample; "skip" drops bad
            samples (and the rest of an unreadable shard), counted and logged as `train/skipped_samples`.
        bad_sample_limit: with "skip", the run stops after this many bad samples in a row in one data-loader worker
            (or a validation pass with none good), naming how many were skipped and the first of them.
        toy_world: when set and `data_dir` has no manifest, `prepare_data` renders this toy-world dataset
            there first (saying so, and naming a sibling dataset of a similar name), so `fit` works on a fresh
            machine; a `data_dir` holding other files is refused, never overwritten.
        seed: seed of the training stream's RNGs (None: `seed_everything`'s seed, else 0).
        resume: "exact" replays the consumed part of the training stream when a run resumes (see the module
            docstring); "approximate" starts a fresh stream, seeded by the number of batches consumed.
    """

    def __init__(self, data_dir: str = "data/toy", train_shards: str | None = None, val_shards: str | None = None,
                 num_frames: int = 12, batch_size: int = 8, num_workers: int = 0, shuffle_buffer: int = 64,
                 bad_samples: Literal["fail", "skip"] = "fail", toy_world: ToyWorldSpec | None = None,
                 seed: int | None = None, resume: Literal["exact", "approximate"] = "exact",
                 bad_sample_limit: int = 64) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.train_shards, self.val_shards = train_shards, val_shards
        self.num_frames, self.batch_size, self.num_workers = num_frames, batch_size, num_workers
        self.shuffle_buffer, self.bad_samples, self.toy_world = shuffle_buffer, bad_samples, toy_world
        if bad_samples not in ("fail", "skip"):
            raise ConfigError(f"data.init_args.bad_samples must be 'fail' or 'skip', got {bad_samples!r}")
        if resume not in ("exact", "approximate"):
            raise ConfigError(f"data.init_args.resume must be 'exact' or 'approximate', got {resume!r}")
        for key, value, least in (("num_frames", num_frames, 1), ("batch_size", batch_size, 1),
                                  ("num_workers", num_workers, 0), ("shuffle_buffer", shuffle_buffer, 1),
                                  ("bad_sample_limit", bad_sample_limit, 1)):
            if value < least:
                raise ConfigError(f"data.init_args.{key}={value}: must be >= {least}")
        self.bad_sample_limit = bad_sample_limit
        self.seed, self.resume = seed, resume
        self.consumed_at_start = 0  # training batches consumed before this run (from the checkpoint)

    def state_dict(self) -> dict:
        """Saved in every checkpoint: training batches consumed so far on each rank, and what decides the stream
        (compared on resume)."""
        trainer = self.trainer
        done = trainer.fit_loop.epoch_loop.batch_progress.total.processed if trainer is not None else 0
        return {"train_batches": int(done), "seed": self.stream_seed, **self.stream_settings()}

    def stream_settings(self) -> dict:
        """What, besides the seed, decides which clips the next training batch holds."""
        if (self.data_dir / MANIFEST).is_file():  # the dataset wherever it lies, however long it took to write
            manifest = {k: v for k, v in read_manifest(self.data_dir).record.items() if k != "made_by"}
            digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        else:
            digest = None
        return {"batch_size": self.batch_size, "num_frames": self.num_frames, "train_shards": self.train_shards,
                "manifest_sha256": digest}

    def load_state_dict(self, state: dict) -> None:
        self.consumed_at_start = int(state.get("train_batches", 0))
        if state.get("seed", self.stream_seed) != self.stream_seed:
            raise ConfigError(f"data.init_args.seed={self.stream_seed}: the checkpoint's data stream used seed "
                              f"{state['seed']}; set data.init_args.seed to the checkpoint's to resume exactly")
        if self.resume != "exact":
            return
        now = self.stream_settings()
        differ = [f"{key}: checkpoint {state[key]}, config {now[key]}" for key in now
                  if key in state and state[key] != now[key]]  # a checkpoint older than a key records nothing
        if differ:
            raise ConfigError(f"data.init_args: resuming continues the run's data stream, but {'; '.join(differ)} "
                              "(manifest_sha256: the dataset in data_dir). Resume with the run's own data "
                              "settings, set data.init_args.resume=approximate to continue on other data, or start "
                              "a new run with model.init_args.init_from")

    @property
    def stream_seed(self) -> int:
        return self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    @property
    def shapes(self) -> ClipShapes:
        """Shapes of the data: from the manifest, or from `toy_world` before it has been rendered."""
        if (self.data_dir / MANIFEST).exists():
            return read_manifest(self.data_dir).shapes
        if self.toy_world is not None:
            return ClipShapes.from_record(self.toy_world.shapes())
        raise ConfigError(f"data.init_args.data_dir={self.data_dir} has no {MANIFEST} and data.init_args.toy_world is "
                          "not set: write shards there with `python -m lightning_aapt prepare`, or fix data_dir")

    @property
    def latent_stats(self) -> LatentStats:
        """Per-channel statistics the latents are normalised with (the manifest's `latent_stats`; identity when
        the dataset records none). Decode with the manifest's `normalized_codec()`, which inverts them."""
        return read_manifest(self.data_dir).stats()

    @property
    def codec(self) -> NormalizedCodec:
        """The codec that decodes this data's latents (normalisation included) to video in [0, 1]."""
        return dataset_codec(self.data_dir)

    @property
    def first_frame_alone(self) -> bool:
        """Whether latent 0 of each clip is an image latent (a causal VAE encodes the first frame alone): then
        training clips are cropped from latent 0, never at random, so a clip always starts with an image latent."""
        if not (self.data_dir / MANIFEST).exists():
            return False
        return bool(read_manifest(self.data_dir).codec.get("first_frame_alone", False))

    @property
    def model_dims(self) -> dict[str, int]:
        """Backbone fields the data decides (linked into the model by the CLI)."""
        return self.shapes.model_dims

    def prepare_data(self) -> None:
        if self.toy_world is None:
            return
        if not (self.data_dir / MANIFEST).exists():
            print(render_notice(self.data_dir, self.toy_world), file=sys.stderr)
            prepare_toy_world(self.data_dir, self.toy_world, overwrite=True, flag="data.init_args.data_dir")
        else:
            check_same_world(self.data_dir, self.toy_world)

    def urls(self, split: str) -> list[str]:
        pattern = self.train_shards if split == "train" else self.val_shards
        if pattern is None:
            splits = read_manifest(self.data_dir).splits
            if split not in splits:
                flag = "train_shards" if split == "train" else "val_shards"
                raise DataError(f"{self.data_dir / MANIFEST}: no splits.{split} listing its shards; give "
                                f"data.init_args.{flag} (a shard pattern) or write the dataset with `prepare`")
            return [str(self.data_dir / n) for n in splits[split]["shards"]]
        urls = wds.shardlists.expand_urls(pattern)
        return [u if u.startswith("pipe:") or Path(u).is_absolute() else str(self.data_dir / u) for u in urls]

    def _stream(self, split: str) -> ClipStream:
        shapes = self.shapes
        if shapes.clip_frames < self.num_frames:
            raise DataError(f"data.num_frames={self.num_frames} is longer than the clips in {self.data_dir} "
                            f"({shapes.clip_frames} frames)")
        rank, world = self._rank_and_world_size()
        train = split == "train"
        skip, seed = 0, self.stream_seed
        if train and self.consumed_at_start:
            if self.resume == "exact":
                skip = self.consumed_at_start
            else:
                seed = hash((seed, self.consumed_at_start)) & (2**62 - 1)
        return ClipStream(self.urls(split), shapes, self.num_frames, resampled=train, shuffle=train,
                          random_crop=train and not self.first_frame_alone, bad_samples=self.bad_samples,
                          shuffle_buffer=self.shuffle_buffer, bad_sample_limit=self.bad_sample_limit,
                          rank=rank, world_size=world, seed=seed, skip_batches=skip, batch_size=self.batch_size,
                          stats=self.latent_stats)

    def _rank_and_world_size(self) -> tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _loader(self, split: str) -> DataLoader:
        return StoppableLoader(self._stream(split), batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_clips, persistent_workers=False, drop_last=split == "train")

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("val")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("val")
