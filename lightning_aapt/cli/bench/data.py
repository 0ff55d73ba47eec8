"""Data suite: WebDataset streaming throughput of the training loader against what a training step consumes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from datamodules.toy_world import prepare_toy_world
from datamodules.web_video import WebVideoDataModule
from lightning_aapt.data import MANIFEST
from lightning_aapt.tables import markdown_table
from lightning_aapt.world.dataset import ToyWorldSpec


def samples_per_second(data_dir: Path, workers: int, batch: int = 8, batches: int = 40) -> float:
    loader = WebVideoDataModule(str(data_dir), num_frames=8, batch_size=batch, num_workers=workers).train_dataloader()
    stream = iter(loader)
    next(stream)  # worker start-up and the shuffle buffer's first fill: not timed
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * batch / (time.perf_counter() - start)


def run(data_dir: str | None, consumed_per_second: float | None, batches: int = 40) -> dict:
    path = Path(data_dir) if data_dir else None
    if path is None or not (path / MANIFEST).is_file():
        path = Path(tempfile.mkdtemp()) / "toy"
        prepare_toy_world(path, ToyWorldSpec(train_clips=256, val_clips=16), progress=False)
    out = {"data_dir": str(path),
           "samples_per_second": {str(w): samples_per_second(path, w, batches=batches) for w in (0, 2)}}
    if consumed_per_second:
        out["training_consumes_per_second"] = consumed_per_second
        out["headroom"] = max(out["samples_per_second"].values()) / consumed_per_second
    return out


def table(r: dict) -> str:
    rows = [(f"{w} workers", f"{v:.0f}") for w, v in r["samples_per_second"].items()]
    if "headroom" in r:
        rows.append(("a stage-1 training step consumes", f"{r['training_consumes_per_second']:.1f}"))
    lines = markdown_table(("loader (toy shards, 8-frame clips, batch 8)", "clips / s"), rows)
    if "headroom" in r:
        lines += ["",
                  f"The loader delivers {r['headroom']:.0f}x what training consumes."]
    return "\n".join(lines)
