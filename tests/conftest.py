import pytest
import torch

from datamodules.toy_world import prepare_toy_world
from lightning_aapt.world import WorldConfig
from lightning_aapt.world.dataset import ToyWorldSpec

# A small toy dataset: 16x16 frames -> 4x4 latents of 48 channels, 8-frame clips, 8 clips per shard.
TINY_SPEC = ToyWorldSpec(train_clips=24, val_clips=16, clip_frames=8, world=WorldConfig(size=16, max_sprites=2,
                         min_radius=2.0, max_radius=3.0, agent_radius=2.5), samples_per_shard=8, seed=7)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    """Directory of the tiny toy dataset (3 train shards, 2 val shards), rendered once per session."""
    out = tmp_path_factory.mktemp("toy") / "data"
    prepare_toy_world(out, TINY_SPEC, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_chain(toy_data, tmp_path_factory):
    """Stages 0-3 trained a few steps each from their shipped YAMLs (tiny backbone, the tiny dataset), once per test
    run and shared: each stage starts from the one before (stage 3's discriminator from stage 1).
    {"stage0": (config, last.ckpt), ..., "stage3": (...)}; tests read these files, never write them."""
    from tests.helpers_cli import fit, tiny_config

    tmp = tmp_path_factory.mktemp("chain")
    chain, before = {}, None
    for stage, args in (("stage0", {}), ("stage1", {}), ("stage2", {"grid_steps": 4, "eval_steps": [1, 2]}),
                        ("stage3", {"steps": 4, "val_every": 2})):
        steps, val_every = args.pop("steps", 3), args.pop("val_every", None)
        if before is not None:
            args["init_from"] = str(before)
        if stage == "stage3":
            args["discriminator"] = {"init_from": str(chain["stage1"][1]), "updates_before_g": 0}
        config = tiny_config(stage, tmp, toy_data, steps=steps, val_every=val_every, **args)
        fit(config)
        before = tmp / stage / "checkpoints" / "last.ckpt"
        chain[stage] = (config, before)
    return chain
