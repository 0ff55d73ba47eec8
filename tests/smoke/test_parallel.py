"""Two gloo processes under FSDP2 (ModelParallelStrategy) or DDP train exactly as one process does."""

import pytest
import torch
import yaml

from lightning_aapt.checkpoints import load_backbone
from tests.helpers_cli import fit, tiny_config
from tests.helpers_parallel import run_cli, scalars

pytestmark = [pytest.mark.smoke, pytest.mark.processes]

STRATEGIES = {
    "fsdp2": {"class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
              "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1, "save_distributed_checkpoint": False}},
    "ddp": "ddp",  # stage 3: ddp_find_unused_parameters_true (G and D update in turn)
}
LOSSES = {"stage1": ["train/loss"], "stage3": ["train/loss_d", "train/loss_g"]}


def config_for(stage, tmp_path, data, name, batch_size, strategy=None):
    extra = {"discriminator": {"init_from": None, "updates_before_g": 0}, "rollout": {"frames": 7}} \
        if stage == "stage3" else {}
    steps = 6 if stage == "stage3" else 3  # stage 3: Lightning counts G and D steps (3 of each)
    (tmp_path / name).mkdir(exist_ok=True)
    config = tiny_config(stage, tmp_path / name, data, steps=steps, val_every=1000, init_from=None, **extra)
    spec = yaml.safe_load(config.read_text())
    spec["data"]["class_path"] = "tests.helpers_parallel.GlobalBatchData"
    spec["data"]["init_args"]["batch_size"] = batch_size
    spec["trainer"].update(num_sanity_val_steps=0, limit_val_batches=0)
    spec["trainer"]["callbacks"] = [c for c in spec["trainer"]["callbacks"]
                                    if c["class_path"].startswith("lightning.")]  # no evaluation callbacks
    if strategy is not None:
        chosen = "ddp_find_unused_parameters_true" if (strategy, stage) == ("ddp", "stage3") else STRATEGIES[strategy]
        spec["trainer"].update(devices=2, strategy=chosen)
    config.write_text(yaml.safe_dump(spec))
    return config


@pytest.mark.parametrize("stage", ["stage1", "stage3"])
@pytest.mark.parametrize("strategy", ["fsdp2", "ddp"])
def test_two_processes_give_the_one_process_losses(stage, strategy, toy_data, tmp_path):
    fit(config_for(stage, tmp_path, toy_data, "single", batch_size=4))
    run_cli("fit", "--config", str(config_for(stage, tmp_path, toy_data, "multi", batch_size=2, strategy=strategy)))
    for tag in LOSSES[stage]:
        single = scalars(tmp_path / "single" / stage, tag)
        multi = scalars(tmp_path / "multi" / stage, tag)
        assert len(single) >= 3 and single.keys() == multi.keys(), tag
        for step, value in single.items():
            assert multi[step] == pytest.approx(value, abs=1e-5, rel=1e-5), (tag, step)
    assert (tmp_path / "multi" / stage / "checkpoints" / "last.ckpt").is_file()


def test_fsdp2_bf16_checkpointed_run_writes_a_sharded_checkpoint_that_loads(toy_data, tmp_path):
    """bf16 mixed precision + activation checkpointing under FSDP2: trains close to fp32, and the per-rank
    checkpoint folder it writes initialises the next stage (load_backbone gathers it in one process)."""
    fit(config_for("stage1", tmp_path, toy_data, "single", batch_size=4))
    config = config_for("stage1", tmp_path, toy_data, "multi", batch_size=2, strategy="fsdp2")
    spec = yaml.safe_load(config.read_text())
    spec["trainer"]["strategy"]["init_args"]["save_distributed_checkpoint"] = True
    spec["model"]["init_args"]["parallel"] = {"precision": "bf16", "activation_checkpointing": True}
    config.write_text(yaml.safe_dump(spec))
    run_cli("fit", "--config", str(config))
    single, multi = (scalars(tmp_path / n / "stage1", "train/loss") for n in ("single", "multi"))
    for step, value in single.items():
        assert multi[step] == pytest.approx(value, rel=3e-2), step  # bf16 compute, fp32 master weights
    folder = tmp_path / "multi" / "stage1" / "checkpoints" / "last.ckpt"
    assert folder.is_dir() and (folder / "meta.pt").is_file()
    sharded = load_backbone(folder)
    reference = load_backbone(tmp_path / "single" / "stage1" / "checkpoints" / "last.ckpt")
    for (name, a), b in zip(sharded.state_dict().items(), reference.state_dict().values(), strict=True):
        assert a.dtype == torch.float32 and torch.allclose(a, b, atol=2e-3), name
