"""Stages 1 and 3 train a few steps on CUDA with FlexAttention, in bf16 mixed precision (opt in: -m gpu)."""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers_cli import fit, tiny_config

pytestmark = [pytest.mark.smoke, pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("stage", ["stage1", "stage3"])
def test_stage_trains_on_cuda_with_flex(stage, toy_data, tmp_path):
    extra = {"discriminator": {"init_from": None, "updates_before_g": 0}, "rollout": {"frames": 6}} \
        if stage == "stage3" else {}
    config = tiny_config(stage, tmp_path, toy_data, steps=4, init_from=None, **extra)
    fit(config, "--trainer.accelerator=gpu", "--trainer.precision=bf16-mixed",
        "--model.init_args.attention_backend=flex")
    assert (tmp_path / stage / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(tmp_path / stage)).Reload()
    losses = [e.value for tag in ("train/loss", "train/loss_g", "train/loss_d") if tag in events.Tags()["scalars"]
              for e in events.Scalars(tag)]
    assert losses and all(math.isfinite(v) for v in losses)  # bf16 + FlexAttention trained, not just ran

