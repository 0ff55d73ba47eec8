"""Each stage trains a few steps from its shipped YAML; stage 1 starts from stage 0's checkpoint."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_aapt.checkpoints import load_backbone
from lightning_aapt.cli import main
from lightning_aapt.errors import Refusal
from lightning_aapt.stages import DiffusionAdaptation
from tests.helpers_cli import fit, tiny_config

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def stage0_run(toy_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stages")
    fit(tiny_config("stage0", tmp, toy_data))
    return tmp


def test_stage0_runs_three_steps_and_writes_checkpoint_and_logs(stage0_run):
    ckpt = stage0_run / "stage0" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["global_step"] == 3 and state["backbone_config"]["bidirectional"]
    assert any(k.startswith("ema.") for k in state["state_dict"])
    events = EventAccumulator(str(stage0_run / "stage0")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss"} <= tags and any(t.startswith("train/loss_t") for t in tags)


def test_stage1_starts_from_stage0_ema_weights(stage0_run):
    source = stage0_run / "stage0" / "checkpoints" / "last.ckpt"
    ema0 = load_backbone(source)
    causal = ema0.cfg.replace(bidirectional=False, recycled_input=True, window_frames=4, sink_frames=1)
    stage1 = DiffusionAdaptation(backbone=causal, init_from=str(source)).model.state_dict()
    for name, weight in ema0.state_dict().items():
        assert torch.equal(stage1[name], weight), name
    assert torch.count_nonzero(stage1["recycled_embed.weight"]) == 0  # new input group, zero-initialised
    raw0 = torch.load(source, map_location="cpu", weights_only=True)["state_dict"]
    assert not torch.equal(raw0["model.head.weight"], raw0["ema.head.weight"])  # it is the EMA, not the raw


def test_stage1_trains_three_steps(stage0_run, toy_data, tmp_path):
    source = stage0_run / "stage0" / "checkpoints" / "last.ckpt"
    fit(tiny_config("stage1", tmp_path, toy_data, init_from=str(source)))
    state = torch.load(tmp_path / "stage1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 3 and "optimizer_states" in state


def test_init_from_mismatch_is_a_clear_error(stage0_run, toy_data, tmp_path):
    source = stage0_run / "stage0" / "checkpoints" / "last.ckpt"
    config = tiny_config("stage1", tmp_path, toy_data, init_from=str(source))
    with pytest.raises(ValueError, match=r"init_from=.*do not fit"):
        fit(config, "--model.init_args.backbone.dim", "96")


def test_missing_init_from_names_the_command_that_writes_it(toy_data, tmp_path):
    config = tiny_config("stage1", tmp_path, toy_data, init_from=str(tmp_path / "runs/stage0/checkpoints/last.ckpt"))
    # (the CLI re-raises it inside its own validation error; the message travels with it, as a refusal)
    with pytest.raises(Refusal, match=r"init_from=.*no such file.*experiments/stage0\.yaml"):
        fit(config)


def test_stage_refuses_the_wrong_backbone_form(toy_data, tmp_path):
    config = tiny_config("stage0", tmp_path, toy_data)
    with pytest.raises(ValueError, match="bidirectional=true"):
        fit(config, "--model.init_args.backbone.bidirectional", "false")


def test_validate_test_and_predict_run_on_a_stage_checkpoint(stage0_run, toy_data, tmp_path):
    source = stage0_run / "stage0" / "checkpoints" / "last.ckpt"
    config = tiny_config("stage1", tmp_path, toy_data, init_from=str(source), sample_steps=2)
    for command in ("validate", "test"):
        assert main([command, "--config", str(config)]) == 0
    from datamodules.web_video import WebVideoDataModule
    from lightning_aapt.inference import stream_after_context

    causal = load_backbone(source).cfg.replace(bidirectional=False, recycled_input=True, window_frames=4)
    module = DiffusionAdaptation(backbone=causal, init_from=str(source), sample_steps=2)
    dm = WebVideoDataModule(str(toy_data), num_frames=4, batch_size=2)
    batch = next(iter(dm.predict_dataloader()))
    out = module.predict_step(batch, 0)
    assert out["latents"].shape == batch.latents.shape and torch.isfinite(out["latents"]).all()
    assert torch.equal(out["latents"][:, :2], batch.latents[:, :2])  # the real context frames are kept
    # the streamed frames are the ones validation scores: frame f driven by controls[f]
    streamed = stream_after_context(module.sampling_model, batch.text, batch.latents[:, :2], batch.controls,
                                    batch.latents.shape[1], 2, module.timestep_cfg.shift, seed=0)
    torch.testing.assert_close(out["latents"][:, 2:], streamed)
