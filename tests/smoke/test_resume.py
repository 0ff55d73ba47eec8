"""A run killed with SIGKILL and resumed from its last checkpoint continues with exactly the uninterrupted losses."""

import signal

import pytest
import torch
import yaml

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.stages import DiffusionAdaptation
from lightning_aapt.stages.checkpoints import recorded_backbone
from tests.helpers_cli import fit, tiny_config
from tests.helpers_parallel import run_cli, scalars

pytestmark = pytest.mark.smoke
DIMS = {"latent_channels": 48, "text_dim": 64, "control_dim": 2, "bidirectional": False, "recycled_input": True}


def config_for(tmp_path, data, name, kill_at=None):
    (tmp_path / name).mkdir()
    config = tiny_config("stage1", tmp_path / name, data, steps=8, val_every=1000, init_from=None)
    spec = yaml.safe_load(config.read_text())
    spec["data"]["init_args"].update(num_workers=2, shuffle_buffer=4)  # two workers: each replays its share
    spec["trainer"].update(num_sanity_val_steps=0, limit_val_batches=0)
    callbacks = [c for c in spec["trainer"]["callbacks"] if c["class_path"].startswith("lightning.")]
    for c in callbacks:
        if c["class_path"].endswith("ModelCheckpoint"):
            c["init_args"]["every_n_train_steps"] = 3
    if kill_at is not None:
        callbacks.append({"class_path": "tests.helpers_parallel.KillAt", "init_args": {"step": kill_at}})
    spec["trainer"]["callbacks"] = callbacks
    config.write_text(yaml.safe_dump(spec))
    return config


def test_sigkill_then_resume_continues_exactly(toy_data, tmp_path):
    run_cli("fit", "--config", str(config_for(tmp_path, toy_data, "whole")))  # same process setup as below
    killed = config_for(tmp_path, toy_data, "killed", kill_at=5)
    with pytest.raises(AssertionError, match=f"failed \\(-{int(signal.SIGKILL)}\\)"):
        run_cli("fit", "--config", str(killed))
    ckpt = tmp_path / "killed" / "stage1" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 3  # the step-3 checkpoint
    spec = yaml.safe_load(killed.read_text())  # the same run, without the kill, from its last checkpoint
    spec["trainer"]["callbacks"] = [c for c in spec["trainer"]["callbacks"] if "KillAt" not in c["class_path"]]
    killed.write_text(yaml.safe_dump(spec))
    run_cli("fit", "--config", str(killed), "--ckpt_path", str(ckpt))

    whole = scalars(tmp_path / "whole" / "stage1", "train/loss")
    resumed = scalars(tmp_path / "killed" / "stage1", "train/loss")
    assert sorted(whole) == list(range(8))  # logged at steps 0..7
    for step in range(3, 8):  # after the checkpoint: recomputed by the resumed process
        assert resumed[step] == pytest.approx(whole[step], abs=1e-6), step
    final = [torch.load(d / "stage1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
             for d in (tmp_path / "whole", tmp_path / "killed")]
    for key, value in final[0]["state_dict"].items():
        torch.testing.assert_close(final[1]["state_dict"][key], value, atol=1e-6, rtol=1e-5)


def test_truncated_or_foreign_checkpoints_are_named(toy_data, tmp_path):
    config = tiny_config("stage1", tmp_path, toy_data, steps=1, init_from=None)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(AssertionError, match=r"bad\.ckpt: unreadable checkpoint"):
        run_cli("fit", "--config", str(config), "--ckpt_path", str(bad))
    with pytest.raises(AssertionError, match=r"missing\.ckpt: no such checkpoint"):
        run_cli("fit", "--config", str(config), "--ckpt_path", str(tmp_path / "missing.ckpt"))
    fit(config)
    ckpt = torch.load(tmp_path / "stage1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # LightningCLI rebuilds the model from a checkpoint's own hyperparameters; a module built otherwise refuses
    # a checkpoint of another backbone, naming the fields.
    other = DiffusionAdaptation(BackboneConfig.preset("tiny", dim=64, num_heads=2, **DIMS))
    with pytest.raises(ValueError, match="dim: checkpoint 48 vs config 64"):
        other.on_load_checkpoint(ckpt)
    # How attention runs is not the architecture: another backend resumes the same checkpoint, and a checkpoint
    # that still records run settings in its backbone config (written before they left it) loads.
    same = DiffusionAdaptation(recorded_backbone(ckpt["backbone_config"]), attention_backend="reference")
    ckpt["backbone_config"].update(attention_backend="sdpa", max_cache_frames=2048)
    same.on_load_checkpoint(ckpt)
