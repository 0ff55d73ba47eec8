"""Does training learn? Minutes-long toy runs (opt in: `python -m pytest -m slow`).

A 16-px toy world (one or two sprites, 4x4-px tokens) and a 128-wide causal model, so a stage trains in a few
minutes on 2 CPU cores; the numbers asserted are margins over floors the data itself defines, not recorded
values of an earlier run.
"""

import pytest
import torch
import yaml

from datamodules.toy_world import ToyWorldSpec, prepare_toy_world
from lightning_aapt.world import WorldConfig
from tests.helpers_cli import EXPERIMENTS, fit

pytestmark = pytest.mark.slow

REFERENCE = yaml.safe_load((EXPERIMENTS / "reference" / "stage1.yaml").read_text())  # the reference experiment's
WORLD = WorldConfig(**REFERENCE["data"]["init_args"]["toy_world"]["world"])  # 16 px, a directly steered agent
BACKBONE = {k: v for k, v in REFERENCE["model"]["init_args"]["backbone"].items()
            if k in ("dim", "depth", "num_heads", "freq_dim", "patch_size")}


@pytest.fixture(scope="module")
def world16(tmp_path_factory):
    out = tmp_path_factory.mktemp("world16") / "data"
    prepare_toy_world(out, ToyWorldSpec(train_clips=300, val_clips=32, clip_frames=16, world=WORLD), progress=False)
    return out


def stage_config(stage: str, tmp_path, data_dir, steps: int, **model_args):
    config = yaml.safe_load((EXPERIMENTS / "reference" / f"{stage}.yaml").read_text())
    trainer = config["trainer"]
    trainer["callbacks"] = [c for c in trainer["callbacks"] if c["class_path"].startswith("lightning.")]
    trainer.update(max_steps=steps, val_check_interval=steps, limit_val_batches=4, default_root_dir=str(tmp_path),
                   enable_progress_bar=False, enable_model_summary=False)
    trainer["logger"]["init_args"]["save_dir"] = str(tmp_path)
    config["model"]["init_args"]["backbone"].update(BACKBONE)
    config["model"]["init_args"].update(model_args)
    config["data"]["init_args"].update(data_dir=str(data_dir), toy_world=None)
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def stage1(world16, tmp_path_factory):
    """A stage-1 run of 800 steps from scratch (shared by the tests below)."""
    tmp = tmp_path_factory.mktemp("stage1")
    fit(stage_config("stage1", tmp, world16, steps=800, init_from=None))
    return tmp


def scalars(run_dir, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return [e.value for e in EventAccumulator(str(run_dir)).Reload().Scalars(tag)]


def test_stage1_beats_copying_the_previous_frame(stage1):
    """Teacher-forced one-step (t = 1) next-frame prediction: an untrained model scores far above copying the
    previous frame; after 800 steps from scratch the model must be clearly below it."""
    state = torch.load(stage1 / "stage1/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 800
    error, copy = scalars(stage1 / "stage1", "val/next_frame_mse")[-1], scalars(stage1 / "stage1", "val/copy_mse")[-1]
    assert error < 0.9 * copy, (error, copy)


@pytest.fixture(scope="module")
def stage2(stage1, world16, tmp_path_factory):
    """A stage-2 run of 200 steps from the stage-1 fixture."""
    tmp = tmp_path_factory.mktemp("stage2")
    fit(stage_config("stage2", tmp, world16, steps=200, init_from=str(stage1 / "stage1/checkpoints/last.ckpt")))
    return tmp


def test_stage3_discriminator_learns_to_separate_real_from_generated(stage1, stage2, world16, tmp_path):
    """Stage 3's discriminator, from the stage-1 weights with fresh heads, learns to tell real from generated frames
    in its warm-up against the stage-2 generator: after 60 updates it ranks the real frame of a pair above the
    generated one (paired per frame, `train/d_accuracy`; chance is 0.5) in more than 75% of pairs, and more
    often than over its first 10 updates (measured once: 0.76 over the first 10, 0.86 over the last 20)."""
    s1 = str(stage1 / "stage1/checkpoints/last.ckpt")
    warmup = 60
    s2 = str(stage2 / "stage2/checkpoints/last.ckpt")
    config = stage_config("stage3", tmp_path, world16, steps=warmup, init_from=s2, disc_init_from=s1,
                          disc_warmup_steps=warmup)
    fit(config, "--trainer.log_every_n_steps=1")
    accuracy = scalars(tmp_path / "stage3", "train/d_accuracy")
    assert len(accuracy) >= 30
    early, late = sum(accuracy[:10]) / 10, sum(accuracy[-20:]) / 20
    assert late > 0.75 and late > early, (early, late)


def agent_error(checkpoint, data_dir, scenes: int = 32, frames: int = 40) -> float:
    """Mean agent position error (px) of 1-NFE streams of `frames` frames after 2 real ones, over validation scenes
    of the toy world at `data_dir`, against the world's re-rendering of the same actions (the report's measure)."""
    from datamodules.shards import read_manifest
    from datamodules.toy_world import clip_seeds, spec_from_manifest
    from lightning_aapt.codecs import codec_from_manifest
    from lightning_aapt.inference.toy_eval import policy_actions, score_toy_video, stream_toy_clips
    from lightning_aapt.stages.checkpoints import load_backbone

    toy = spec_from_manifest(data_dir)
    seeds = [clip_seeds(toy, "val", i) for i in range(scenes)]
    actions = policy_actions([a for _, a in seeds], frames, toy.persistence)
    model = load_backbone(checkpoint).eval()
    stream = stream_toy_clips(model, codec_from_manifest(read_manifest(data_dir)), toy.text_encoder(), toy.world,
                              [s for s, _ in seeds], actions, steps=1, context_frames=2)
    curve = score_toy_video(stream.generated, stream, window=8).curves["agent_error_px"]
    return sum(curve) / len(curve)


@pytest.mark.xfail(strict=True, reason="open (issue 13): at this budget (stage 1 800 steps from scratch, stage 2 200) "
                   "40 updates of the reference stage 3 raised the agent error from 9.1 to 14.7 px (measured once); "
                   "from the reference run's stages (2.50 px) it lowers it to 0.91")
def test_stage3_lowers_drift_against_its_stage2_start(stage1, stage2, world16, tmp_path):
    """The reference stage 3 (student-forced rollouts from 2 real frames, long video, the regression onto the real
    clip beside the adversarial term), 40 generator updates from the stage-2 fixture: streamed 40 frames (2.5x the
    16-frame clips, five times the 8-frame ones stages 1-2 train on) after 2 real frames of 32 validation scenes,
    its agent error is below its starting point's by a margin."""
    s1, s2 = str(stage1 / "stage1/checkpoints/last.ckpt"), str(stage2 / "stage2/checkpoints/last.ckpt")
    fit(stage_config("stage3", tmp_path, world16, steps=80, init_from=s2, disc_init_from=s1))
    before, after = agent_error(s2, world16), agent_error(tmp_path / "stage3/checkpoints/last.ckpt", world16)
    assert after < 0.8 * before, (before, after)
