"""Two gloo processes under FSDP2 (ModelParallelStrategy) or DDP train exactly as one process does."""

import pytest
import yaml

from tests.helpers_cli import fit, tiny_config
from tests.helpers_parallel import run_cli, scalars

pytestmark = pytest.mark.smoke

STRATEGIES = {
    "fsdp2": {"class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
              "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1, "save_distributed_checkpoint": False}},
    "ddp": "ddp",  # stage 3: ddp_find_unused_parameters_true (G and D update in turn)
}
LOSSES = {"stage1": ["train/loss"], "stage3": ["train/loss_d", "train/loss_g"]}


def config_for(stage, tmp_path, data, name, batch_size, strategy=None):
    extra = {"disc_init_from": None, "num_rollout_frames": 7} if stage == "stage3" else {}
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
