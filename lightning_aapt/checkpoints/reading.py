"""Reading lightning_aapt checkpoints: one reader (`read_checkpoint`) for a file or a sharded folder, which says what
is wrong with a bad one. Torch only: `play`, `sample`, `merge` and `eval` read checkpoints without Lightning."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from lightning_aapt.errors import CheckpointError

# Lightning's names for a checkpoint it finds itself (`--ckpt_path last`).
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def read_checkpoint(path: str | Path, flag: str, weights: bool = True) -> dict:
    """The one reader of lightning_aapt checkpoints — `fit --ckpt_path`, `init_from`, `discriminator.init_from`, `eval`,
    `sample`, `play`, `merge` — a file, or a sharded checkpoint folder (ModelParallelStrategy), read on the CPU.

    Anything else is refused with a `CheckpointError` that names `flag`, the path and what is there: nothing, a
    folder that is not a sharded checkpoint, an empty or truncated file, a file that is not a torch checkpoint,
    one holding Python objects, or a torch file that is not a lightning_aapt checkpoint. `weights=False` reads the
    recorded settings only (a file's tensors are memory-mapped and never read; a folder's weights are skipped).
    """
    path = Path(path)
    where = f"{flag}={path}"
    if not path.exists():
        raise CheckpointError(f"{where}: no such file or folder{how_to_make(path)}")
    if path.is_dir():
        if not (path / "meta.pt").is_file():
            found = sorted(p.name for p in path.iterdir())[:6]
            raise CheckpointError(f"{where}: a folder without meta.pt, so not a sharded checkpoint folder (it holds "
                                  f"{found or 'nothing'}); give a .ckpt file or a folder written with "
                                  "save_distributed_checkpoint=True")
        try:
            checkpoint = read_sharded_checkpoint(path, weights)
        except Exception as err:
            raise CheckpointError(f"{where}: unreadable sharded checkpoint folder ({brief(err)})") from err
    else:
        checkpoint = read_torch_file(path, where, mmap=not weights)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "backbone_config" not in checkpoint:
        holds = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{where}: a torch file, but not a lightning_aapt checkpoint (no backbone_config and "
                              f"state_dict; it holds {holds}); a Wan transformer is read from .safetensors/.pth or "
                              "its diffusers folder")
    return checkpoint


def read_torch_file(path: Path, where: str, mmap: bool = False) -> dict:
    """torch.load(weights_only=True) of a file, each way it can fail said plainly (`mmap`: tensors mapped, not
    read)."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{where}: an empty file (0 bytes): its writer stopped before writing anything")
    with open(path, "rb") as f:
        head = f.read(40)
    archive = zipfile.is_zipfile(path)  # torch.save's format; before torch 1.6, a bare pickle
    if not archive and head.startswith(b"PK\x03\x04"):
        raise CheckpointError(f"{where}: truncated: a zip archive of {size:,} bytes without its end record (a write "
                              "cut short, or a partial copy); use an earlier checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and archive)
    except Exception as err:
        if not archive:
            raise CheckpointError(f"{where}: not a torch checkpoint (torch.save writes a zip archive; this file "
                                  f"starts with {describe_bytes(head)})") from err
        if isinstance(err, pickle.UnpicklingError):
            raise CheckpointError(f"{where}: holds Python objects beyond tensors and plain data, which "
                                  f"torch.load(weights_only=True) refuses ({brief(err)}); lightning_aapt "
                                  "checkpoints hold none") from err
        raise CheckpointError(f"{where}: a zip archive torch cannot read as a checkpoint ({brief(err)})") from err


def how_to_make(path: Path) -> str:
    stage = re.search(r"stage(\d)", str(path))
    return (f"; `python -m lightning_aapt fit --config experiments/stage{stage.group(1)}.yaml` writes it"
            if stage else "")


def describe_bytes(head: bytes) -> str:
    """A file's first bytes, as text when they are text."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\n\r\t" for c in text):
        return f"the text {text.splitlines()[0][:30]!r}" if text.strip() else "blank text"
    return f"the bytes {head[:8].hex(' ')}"


def brief(err: Exception) -> str:
    """An exception's type and the first line of its message."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def read_sharded_checkpoint(path: Path, weights: bool = True) -> dict:
    """A checkpoint folder written by ModelParallelStrategy(save_distributed_checkpoint=True), read whole in one
    process: its metadata (`meta.pt`) plus the full `state_dict` (optimizer shards are not read; nor the weights,
    weights=False: `state_dict` is then {})."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint import load as dcp_load
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    checkpoint = torch.load(path / "meta.pt", map_location="cpu", weights_only=True)
    if not weights:
        return {"state_dict": {}, **checkpoint}
    reader = FileSystemReader(str(path))
    stored = reader.read_metadata().state_dict_metadata
    tensors = {key.removeprefix("state_dict."): torch.empty(meta.size, dtype=meta.properties.dtype)
               for key, meta in stored.items()
               if key.startswith("state_dict.") and isinstance(meta, TensorStorageMetadata)}
    state = {"state_dict": tensors}
    dcp_load(state, storage_reader=reader)  # no process group: reads in this process alone
    checkpoint["state_dict"] = state["state_dict"]
    return checkpoint


def stage_of(checkpoint: dict) -> str | None:
    """The class name of the stage that wrote a checkpoint; None for a plain backbone checkpoint (`merge`)."""
    recorded = checkpoint.get("stage") or (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    return recorded.rsplit(".", 1)[-1] if recorded else None
