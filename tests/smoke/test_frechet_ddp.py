"""The Fréchet distance of two gloo processes, each seeing half the data, equals the 1-process value."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_aapt.metrics import FrechetDistance

pytestmark = [pytest.mark.smoke, pytest.mark.processes]


def data():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(64, 6, generator=gen), torch.randn(48, 6, generator=gen) * 1.5 + 0.2


def _rank(rank: int, world: int, init: str, out: dict) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    real, fake = data()
    metric = FrechetDistance()
    metric.update(real[rank::world], real=True)
    metric.update(fake[rank::world], real=False)
    out[rank] = metric.compute().item()
    dist.destroy_process_group()


def test_two_processes_equal_one(tmp_path):
    real, fake = data()
    single = FrechetDistance()
    single.update(real, real=True)
    single.update(fake, real=False)
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(2, f"file://{tmp_path}/pg", out), nprocs=2, join=True)
        values = dict(out)
    assert values[0] == pytest.approx(single.compute().item(), rel=1e-9)
    assert values[1] == pytest.approx(values[0], rel=1e-12)
