"""Writing WebDataset shards and their manifest, atomically (temporary name, then rename).

One sample = one clip (docs/architecture.md §6): `latents.npy` (F, C, H, W) float16, `text.npy` (L, Dt) float16,
`controls.npy` (F, A) float32 when the data has controls, and `json` metadata.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import webdataset as wds

from lightning_aapt.data import MANIFEST
from lightning_aapt.errors import ConfigError
from lightning_aapt.files import write_atomic

# what `prepare` writes into a dataset folder: the manifest, `prepare videos`' progress record, the shards (and each
# under its temporary name, left by a crash)
DATASET_FILE = re.compile(r"(manifest|progress)\.json(\.tmp)?|(train|val)-\d{6}\.tar(\.tmp)?")


def dataset_files(out: Path, flag: str = "--out") -> list[Path]:
    """The files of a dataset this project wrote in `out`, for `--overwrite true` to delete once every other argument
    is checked; [] for a missing or empty folder.

    Refused when `out` holds anything `prepare` does not write: a user's files are never lost to a mistyped path."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise ConfigError(f"{flag}={out} is a file, not a dataset folder: refusing to replace it")
    entries = sorted(out.iterdir())
    foreign = [p.name for p in entries if not (p.is_file() and DATASET_FILE.fullmatch(p.name))]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(f"{flag}={out} holds files prepare does not write ({shown}): refusing to delete or "
                          "write over them; name another folder")
    return entries


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class ShardWriter:
    """Writes clips into `{prefix}-{index:06d}.tar` shards of `samples_per_shard` clips each.

    Each shard is written under a `.tmp` name and renamed when complete, so a crash never leaves a
    truncated shard behind under its real name. Use as a context manager; `shards` lists the files written.
    """

    def __init__(self, directory: Path, prefix: str, samples_per_shard: int, first_index: int = 0) -> None:
        self.directory, self.prefix, self.samples_per_shard = Path(directory), prefix, samples_per_shard
        self.first_index = first_index  # the number of the first shard written (a resumed dataset's next)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shards: list[str] = []
        self._writer: wds.TarWriter | None = None
        self._count = 0

    def write(self, key: str, latents: np.ndarray, text: np.ndarray, controls: np.ndarray | None,
              meta: dict) -> None:
        if self._writer is None or self._count == self.samples_per_shard:
            self._close_shard()
            name = f"{self.prefix}-{self.first_index + len(self.shards):06d}.tar"
            self._tmp = self.directory / (name + ".tmp")
            self._writer = wds.TarWriter(str(self._tmp), encoder=False)
            self.shards.append(name)
            self._count = 0
        sample = {"__key__": key, "latents.npy": npy_bytes(latents.astype(np.float16)),
                  "text.npy": npy_bytes(text.astype(np.float16)), "json": json.dumps(meta).encode()}
        if controls is not None:
            sample["controls.npy"] = npy_bytes(controls.astype(np.float32))
        self._writer.write(sample)
        self._count += 1

    def close(self) -> None:
        """Finish the open shard (renamed into place)."""
        self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            os.replace(self._tmp, self.directory / self.shards[-1])
            self._writer = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._close_shard()
        elif self._writer is not None:
            with contextlib.suppress(OSError):  # a full disk fails here too: the first error is the one to report
                self._writer.close()
            self._tmp.unlink(missing_ok=True)
            self.shards.pop()


def write_manifest(directory: Path, manifest: dict) -> None:
    write_atomic(Path(directory) / MANIFEST, json.dumps(manifest, indent=2).encode())
