"""Two gloo processes (DDP ranks) receive disjoint samples, in one pass and in the resampled stream."""

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from datamodules.web_video import WebVideoDataModule

pytestmark = [pytest.mark.smoke, pytest.mark.processes]


def _rank(rank: int, world: int, init: str, data_dir: str, out: dict) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    dm = WebVideoDataModule(data_dir, num_frames=4, batch_size=2, num_workers=2)
    val = [k for b in dm.val_dataloader() for k in b.keys]
    batches = iter(dm.train_dataloader())
    train = [k for _ in range(4) for k in next(batches).keys]
    gathered = [None] * world
    dist.all_gather_object(gathered, {"val": val, "train": train})
    if rank == 0:
        out.update(result=gathered)
    dist.destroy_process_group()


def test_ranks_get_disjoint_samples(toy_data, tmp_path):
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(2, f"file://{tmp_path}/pg", str(toy_data), out), nprocs=2, join=True)
        ranks = out["result"]
    for split in ("val", "train"):
        a, b = (set(r[split]) for r in ranks)
        assert a and b and not a & b, f"{split}: ranks share samples"
    assert len(ranks[0]["val"]) + len(ranks[1]["val"]) == 16  # every val clip exactly once
    # shards never cross ranks: a shard read by rank 0 is never read by rank 1
    shards = [{k.split("#")[0] for k in r["train"] + r["val"]} for r in ranks]
    assert not shards[0] & shards[1]
