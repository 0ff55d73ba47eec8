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
