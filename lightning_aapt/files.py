"""Writing files so that a crash never leaves half of one: a temporary name beside the target, then a rename."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lightning_aapt.errors import ConfigError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; renamed onto `path` when the block succeeds, removed when not."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except RuntimeError as err:  # torch.save's zip writer on a full disk: "unexpected pos 64 vs 0"
        if "unexpected pos" not in str(err) and "PytorchStreamWriter" not in str(err):
            raise
        raise OSError(errno.ENOSPC, f"{path} not written (the disk filled up while writing it); a file there "
                                    "before is unchanged") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_output(out: str | Path, flag: str, overwrite: bool = False, suffixes: tuple[str, ...] = (),
                 **inputs: str | Path | None) -> None:
    """Refuse, before any work, an output file that is one of the command's inputs (`inputs`: flag -> path), that is
    a folder, that lacks one of `suffixes`, or that exists when `overwrite` is false: nothing a user owns is replaced
    unless they said so (and then atomically, by the writer)."""
    out = Path(out)
    for name, path in inputs.items():
        if path is not None and out.resolve() == Path(path).resolve():
            raise ConfigError(f"{flag}={out} is also --{name}, which it reads: name another file")
    if suffixes and out.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag}={out}: expected a {' or '.join(suffixes)} file")
    if out.is_dir():
        raise ConfigError(f"{flag}={out} is a folder: name a file")
    if out.exists() and not overwrite:
        raise ConfigError(f"{flag}={out} already exists: pass --overwrite true to replace it, or name another file")
