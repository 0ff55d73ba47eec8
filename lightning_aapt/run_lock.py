"""One run per run directory: a lock file that a second run (or sweep) on the same directory is refused by.

Two `fit` runs on one `default_root_dir` would otherwise both finish "successfully" with their checkpoints,
`config.yaml` and `last.ckpt` interleaved. The lock is `<dir>/run.lock`, created exclusively, holding who took it
(PID, host, SLURM job, command, time). A lock left by a run that no longer exists is stale and taken over: its
process is gone from this host, or it belongs to this SLURM job (a requeued job reruns its own command on its own
directory).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from lightning_aapt.errors import ConfigError

LOCK = "run.lock"


def _alive(pid: int) -> bool:
    """Is process `pid` running on this host (a zombie, killed but not yet reaped, is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal said it exists


def _stale(holder: dict) -> bool:
    job = os.environ.get("SLURM_JOB_ID")
    if job is not None and holder.get("slurm_job_id") == job:
        return True  # this job, requeued: its earlier run was killed
    if holder.get("host") != socket.gethostname():
        return False  # cannot tell from here: the holder names its host
    pid = holder.get("pid")
    return not isinstance(pid, int) or pid == os.getpid() or not _alive(pid)


class RunLock:
    """`with RunLock(directory, name):` holds `directory` for one run; refused, naming the holder, while another
    live run holds it. `name` leads the refusal (e.g. `--out=sweeps/lr`)."""

    def __init__(self, directory: str | Path, name: str) -> None:
        self.path, self.name = Path(directory) / LOCK, name
        self.held = False

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
        mine = self.path.with_name(f"{LOCK}.{os.getpid()}.tmp")
        mine.write_text(json.dumps(me))
        try:
            self._take(mine)
        finally:
            mine.unlink(missing_ok=True)
        return self

    def _take(self, mine: Path) -> None:
        for _ in range(2):  # a stale lock is removed once, then the exclusive link decides between racers
            try:
                os.link(mine, self.path)  # appears whole, or not at all
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not _stale(holder):
                    raise ConfigError(
                        f"{self.name} is in use by another run (PID {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('started')}: {holder.get('command', '')[:200]}); "
                        f"wait for it or name another directory (if that run is gone, delete {self.path})") from None
                self.path.unlink(missing_ok=True)
                continue
            self.held = True
            return
        raise ConfigError(f"{self.name}: another run took {self.path} at the same moment")

    def _holder(self) -> dict | None:
        """Who holds the lock; None for an unreadable one (not written by this module: stale)."""
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
