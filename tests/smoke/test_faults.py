"""Faults on purpose, each bounded in time: SIGKILL at random moments of `fit` (one in the middle of a checkpoint
write) and of `prepare`, a full disk, SIGTERM while a run waits for data, a stage-3 run whose learning rate
blows it up. After each, what is on disk is either complete or absent, and resuming gives the uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from datamodules.web_video import WebVideoDataModule
from lightning_aapt.checkpoints import read_checkpoint
from lightning_aapt.errors import ConfigError
from lightning_aapt.signals import SIGTERM_STATUS
from lightning_aapt.stages.base import StageModule
from tests.conftest import TINY_SPEC
from tests.helpers_cli import checkpointing_only, fit, tiny_config
from tests.helpers_faults import resumable_config
from tests.helpers_parallel import cli_command, run_cli, scalars

pytestmark = [pytest.mark.smoke, pytest.mark.processes]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(**cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def checkpoints_load(run_dir: Path) -> dict[str, int]:
    """Every *.ckpt under run_dir read by the one reader: {name: global_step}; a half-written file never carries
    a checkpoint's name."""
    return {p.name: read_checkpoint(p, "test")["global_step"] for p in run_dir.rglob("*.ckpt")}


@pytest.mark.parametrize("stage", ["stage1", "stage3"])
def test_sigkill_at_random_moments_then_resume_is_the_uninterrupted_run(toy_data, tmp_path, stage):
    model_args = {}
    if stage == "stage3":  # stage 3 starts from stage 1 and steps two optimizers per batch
        (tmp_path / "stage1").mkdir()
        fit(tiny_config("stage1", tmp_path / "stage1", toy_data, steps=1, init_from=None))
        ckpt = str(tmp_path / "stage1" / "stage1" / "checkpoints" / "last.ckpt")
        model_args = {"init_from": ckpt, "discriminator": {"init_from": ckpt}}
    # Stage 3's global step counts both networks' optimizer steps: twice as many for as many batches.
    steps, tag = (8, "train/loss") if stage == "stage1" else (16, "train/loss_d")
    run_cli("fit", "--config", str(resumable_config(tmp_path, toy_data, "whole", steps, stage=stage, **model_args)))
    # Killed in the middle of its third checkpoint write (the second checkpoint's step file, then last.ckpt).
    config = resumable_config(tmp_path, toy_data, "killed", steps, stage=stage, **model_args, plugin={
        "class_path": "tests.helpers_faults.FailingCheckpointIO", "init_args": {"at": 3, "fault": "kill"}})
    with pytest.raises(AssertionError, match=f"failed \\(-{int(signal.SIGKILL)}\\)"):
        run_cli("fit", "--config", str(config))
    run_dir = tmp_path / "killed" / stage
    last = run_dir / "checkpoints" / "last.ckpt"
    first = checkpoints_load(run_dir)["last.ckpt"]
    assert first in (3, 6), first  # the first checkpoint stands
    assert list(run_dir.rglob("*.tmp")), "the half-written file stays under its temporary name"

    # The same run resumed, and killed again at random moments until one attempt runs to its end.
    spec = yaml.safe_load(config.read_text())
    del spec["trainer"]["plugins"]
    config.write_text(yaml.safe_dump(spec))
    rng = random.Random(0)
    for attempt in range(4):
        run = start("fit", "--config", str(config), "--ckpt_path", str(last))
        if attempt < 3:
            try:
                run.wait(timeout=rng.uniform(4.0, 14.0))
            except subprocess.TimeoutExpired:
                run.kill()  # SIGKILL: no cleanup
                run.wait()
        out, err = run.communicate()
        checkpoints_load(run_dir)
        if run.returncode == 0:
            break
        assert run.returncode == -signal.SIGKILL, err[-3000:]
    assert run.returncode == 0, err[-3000:]

    whole, resumed = scalars(tmp_path / "whole" / stage, tag), scalars(run_dir, tag)
    assert sorted(whole) == sorted(resumed) and len(whole) >= 4
    for step in whole:
        assert resumed[step] == pytest.approx(whole[step], abs=1e-6), step
    # The weights of every step checkpoint both runs wrote (`stepNNNNNN.ckpt`) are the same.
    shared = {p.name for p in (tmp_path / "whole" / stage / "checkpoints").glob("step*.ckpt")}
    shared &= {p.name for p in (run_dir / "checkpoints").glob("step*.ckpt")}
    assert len(shared) >= 2, shared
    for name in shared:
        a, b = (read_checkpoint(d / "checkpoints" / name, "test")["state_dict"]
                for d in (tmp_path / "whole" / stage, run_dir))
        for key, value in a.items():
            torch.testing.assert_close(b[key], value, atol=1e-6, rtol=1e-5)


def test_a_full_disk_keeps_the_previous_checkpoint(toy_data, tmp_path):
    config = resumable_config(tmp_path, toy_data, "full", plugin={
        "class_path": "tests.helpers_faults.FailingCheckpointIO", "init_args": {"at": 3, "fault": "disk_full"}})
    with pytest.raises(OSError, match=r"No space left on device.*written before it are intact") as err:
        fit(config)
    assert "step000006.ckpt" in str(err.value) or "last.ckpt" in str(err.value)
    run_dir = tmp_path / "full" / "stage1"
    assert checkpoints_load(run_dir)["last.ckpt"] == 3
    assert not list(run_dir.rglob("*.tmp")), "a failed write leaves no temporary file"


def test_prepare_killed_midway_is_never_taken_for_a_dataset(tmp_path):
    spec = json.dumps({**dataclasses.asdict(TINY_SPEC), "train_clips": 400, "samples_per_shard": 4})  # ~5 s
    out = tmp_path / "data"
    run = start("prepare", "toy-world", "--out", str(out), "--spec", spec)
    deadline = time.monotonic() + 120
    while not list(out.glob("train-*.tar")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(1).uniform(0.0, 0.5))
    run.kill()
    run.communicate()
    assert run.returncode == -signal.SIGKILL, "prepare finished before it could be killed: give it more clips"
    assert list(out.glob("train-*.tar")) and not (out / "manifest.json").exists()
    with pytest.raises(ConfigError, match=r"has no manifest\.json"):
        WebVideoDataModule(data_dir=str(out)).train_dataloader()
    # Rerun, the same command completes the dataset; the partial shards are replaced.
    run_cli("prepare", "toy-world", "--out", str(out), "--spec", spec)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["clips"] == 400 and len(manifest["splits"]["train"]["shards"]) == 100
    assert not list(out.glob("*.tmp"))


def test_a_second_run_on_a_run_directory_is_refused_while_the_first_runs(toy_data, tmp_path, capsys):
    from lightning_aapt.cli import run

    config = tiny_config("stage1", tmp_path, toy_data, steps=100000, init_from=None)  # runs until killed
    first = start("fit", "--config", str(config))
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.rglob("run.lock")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp_path.rglob("run.lock")), first.communicate()[1][-3000:] if first.poll() is not None else ""
        assert run(["fit", "--config", str(config), "--trainer.max_steps=1"]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another run (PID {first.pid} on " in err and "fit --config" in err, err[-2000:]
    finally:
        first.kill()
        first.communicate()
    # the first run is gone: its lock is stale, and the directory is free again
    assert run(["fit", "--config", str(config), "--trainer.max_steps=1"]) == 0
    assert not list(tmp_path.rglob("run.lock"))


@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_while_waiting_for_data_stops_the_run(toy_data, tmp_path, workers):
    (tmp_path / "run").mkdir()
    config = tiny_config("stage1", tmp_path / "run", toy_data, steps=3, init_from=None)
    fifo = tmp_path / "stalled.tar"  # a shard nobody writes: reading it waits forever
    os.mkfifo(fifo)
    run = start("fit", "--config", str(config), f"--data.init_args.train_shards={fifo}",
                f"--data.init_args.num_workers={workers}", "--trainer.num_sanity_val_steps=0",
                "--trainer.limit_val_batches=0")
    deadline = time.monotonic() + 120
    writer = None
    while writer is None and time.monotonic() < deadline and run.poll() is None:
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds once the run is reading the shard
        except OSError:
            time.sleep(0.1)
    assert writer is not None, run.communicate()[1][-3000:]
    time.sleep(1.0)  # the run now waits inside read()
    run.send_signal(signal.SIGTERM)
    try:
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
        os.close(writer)
    assert run.returncode == SIGTERM_STATUS, err[-3000:]
    assert "Received SIGTERM" in err and "stopped: SIGTERM while waiting for the next batch of data" in err


def test_sigterm_stops_a_run_within_the_grace_time_with_a_failing_status(toy_data, tmp_path):
    """At a batch boundary and inside a validation callback's minute of work alike: `fit ... && next` must not read
    success, and SLURM's 30 s of grace must be enough."""
    config = tiny_config("stage1", tmp_path, toy_data, steps=100000, val_every=3, init_from=None)
    spec = yaml.safe_load(config.read_text())
    started = tmp_path / "started"
    spec["trainer"]["callbacks"] = [{"class_path": "tests.helpers_faults.SlowCallback",
                                     "init_args": {"started": str(started)}}]
    config.write_text(yaml.safe_dump(spec))
    for moment in ("batch", "callback"):
        started.unlink(missing_ok=True)
        run = start("fit", "--config", str(config), "--trainer.num_sanity_val_steps=0",
                    f"--trainer.val_check_interval={3 if moment == 'callback' else 100000}")
        deadline = time.monotonic() + 120
        ready = started if moment == "callback" else tmp_path / "stage1" / "run.lock"
        while not ready.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)  # training steps (batch), or inside the callback's sleep
        run.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            out, err = run.communicate(timeout=60)
        finally:
            run.kill()
        assert run.returncode == SIGTERM_STATUS, f"{moment}: exit {run.returncode}\n{err[-3000:]}"
        assert time.monotonic() - sent < 20, moment
        said = "stopped: SIGTERM while evaluating (SlowCallback)" if moment == "callback" else "stopped: SIGTERM"
        assert said in err, err[-2000:]


def absurd_lr_config(stage: str, tmp_path: Path, data: Path, steps: int, **model_args) -> Path:
    """A tiny run whose learning rate (every optimizer's) is 1e30, checkpointed every step, without validation."""
    (tmp_path / stage).mkdir()
    config = tiny_config(stage, tmp_path / stage, data, steps=steps, **model_args)
    spec = yaml.safe_load(config.read_text())
    init = spec["model"]["init_args"]
    for settings in (init, init["discriminator"]) if stage == "stage3" else (init,):
        settings["optimizer"] = {"lr": 1e30, "warmup_steps": 0}
    config.write_text(yaml.safe_dump(spec))
    return checkpointing_only(config, 1)


def assert_finite_checkpoints(run_dir: Path) -> None:
    paths = list(run_dir.rglob("*.ckpt"))
    assert paths, "the steps before the abort were checkpointed"
    for path in paths:
        state = read_checkpoint(path, "test")["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path


def test_stage3_blown_up_by_its_learning_rate_skips_counts_and_aborts(toy_data, tmp_path):
    (tmp_path / "stage1").mkdir()
    fit(tiny_config("stage1", tmp_path / "stage1", toy_data, steps=1, init_from=None))
    ckpt = str(tmp_path / "stage1" / "stage1" / "checkpoints" / "last.ckpt")
    config = absurd_lr_config("stage3", tmp_path, toy_data, 30, init_from=ckpt, discriminator={"init_from": ckpt},
                              max_bad_steps=2)
    with pytest.raises(RuntimeError, match=r"stage 3: 2 non-finite . losses in a row.*lower the learning rates"):
        fit(config)
    assert_finite_checkpoints(tmp_path / "stage3" / "stage3")


def test_a_non_finite_loss_stops_stages_0_to_2_before_its_step(toy_data, tmp_path):
    config = absurd_lr_config("stage1", tmp_path, toy_data, 20, init_from=None)
    with pytest.raises(FloatingPointError, match=r"step \d+: the training loss is (nan|inf).*optimizer\.lr"):
        fit(config)
    assert_finite_checkpoints(tmp_path / "stage1" / "stage1")


def _judge(rank: int, world: int, init: str, out: dict) -> None:
    """`StageModule.finite_on_every_rank` under a real DDP strategy (gloo) on rank `rank` of `world`."""
    from types import SimpleNamespace

    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.pytorch.strategies import DDPStrategy

    os.environ["LOCAL_RANK"] = str(rank)
    env = LightningEnvironment()
    env.set_world_size(world)
    env.set_global_rank(rank)
    strategy = DDPStrategy(parallel_devices=[torch.device("cpu")] * world, cluster_environment=env,
                           process_group_backend="gloo")
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    module = SimpleNamespace(trainer=SimpleNamespace(strategy=strategy))
    out[rank] = (StageModule.finite_on_every_rank(module, torch.tensor(float("nan") if rank == 0 else 1.0)),
                 StageModule.finite_on_every_rank(module, torch.tensor(2.0)))
    torch.distributed.destroy_process_group()


def test_ranks_agree_when_one_loss_is_not_finite(tmp_path):
    """Under DDP a rank that alone stopped would leave the others in a collective; one that alone skipped a step
    would part its weights from theirs."""
    with torch.multiprocessing.Manager() as manager:
        out = manager.dict()
        torch.multiprocessing.spawn(_judge, args=(2, f"file://{tmp_path}/pg", out), nprocs=2, join=True)
        assert dict(out) == {0: (False, True), 1: (False, True)}
