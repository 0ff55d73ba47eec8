"""The run lock: a second run on a directory is refused by name while the first lives; a dead run's lock is taken."""

import json
import os
import subprocess
import sys

import pytest

from lightning_aapt.errors import ConfigError
from lightning_aapt.run_lock import LOCK, RunLock

pytestmark = pytest.mark.unit


def test_a_live_holder_refuses_a_second_run_and_a_dead_ones_lock_is_taken(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK).write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                                 "started": "2026-12-07 10:00:00", "command": "fit --config a.yaml"}))
        with pytest.raises(ConfigError, match=rf"^the run dir is in use by another run \(PID {holder.pid} on .*"
                                              r"since 2026-12-07 10:00:00: fit --config a.yaml\); wait for it"):
            RunLock(tmp_path, "the run dir").acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path, "the run dir") as lock:  # the holder is gone: its lock is stale
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid() and lock.held
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_unreadable_lock_or_one_of_this_slurm_job_is_stale(tmp_path, monkeypatch):
    (tmp_path / LOCK).write_text("{not json")
    RunLock(tmp_path, "x").acquire().release()
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "another-node", "slurm_job_id": "77"}))
    RunLock(tmp_path, "x").acquire().release()  # this job, requeued
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "another-node", "slurm_job_id": "78"}))
    with pytest.raises(ConfigError, match="x is in use by another run"):
        RunLock(tmp_path, "x").acquire()  # another node's run: cannot be told dead from here
