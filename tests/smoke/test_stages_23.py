"""Stages 2 and 3 train a few steps from their shipped YAMLs, chained after stages 0 and 1."""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers_cli import fit, tiny_config

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def chain(toy_data, tmp_path_factory):
    """Checkpoints of tiny stage 0 and stage 1 runs."""
    tmp = tmp_path_factory.mktemp("chain")
    fit(tiny_config("stage0", tmp, toy_data))
    fit(tiny_config("stage1", tmp, toy_data, init_from=str(tmp / "stage0/checkpoints/last.ckpt")))
    return tmp


def test_stage2_distils_three_steps_and_scores_few_step_streams(chain, toy_data, tmp_path):
    stage1 = str(chain / "stage1/checkpoints/last.ckpt")
    fit(tiny_config("stage2", tmp_path, toy_data, init_from=stage1, grid_steps=4, eval_steps=[1, 2]))
    state = torch.load(tmp_path / "stage2/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 3
    tags = set(EventAccumulator(str(tmp_path / "stage2")).Reload().Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/stream_mse_1step", "val/stream_mse_2step"} <= tags


@pytest.mark.parametrize(("rollout_frames", "forcing", "segment_frames"), [
    (None, "student", None),
    (11, "student", None),  # 11 > 6-frame clips: long-video training by segments
    (8, "student", 3),  # 3-frame segments: [0, 3) and [2, 5) paired with the 6-frame clip's own frames, then prefixes
    (None, "teacher", None),  # AAPT App. D's variant
    (None, "teacher", 4),  # ... judged in segments
])
def test_stage3_trains_generator_and_discriminator(chain, toy_data, tmp_path, rollout_frames, forcing,
                                                   segment_frames):
    stage1 = chain / "stage1/checkpoints/last.ckpt"
    # 4 optimizer steps = 2 batches (Lightning counts the generator's and the discriminator's steps)
    config = tiny_config("stage3", tmp_path, toy_data, steps=4, val_every=2, init_from=str(stage1),
                         discriminator={"init_from": str(stage1), "updates_before_g": 0},
                         rollout={"frames": rollout_frames, "forcing": forcing, "segment_frames": segment_frames})
    fit(config)
    state = torch.load(tmp_path / "stage3/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert state["gan_counters"]["d_updates"] == 2 and len(state["optimizer_states"]) == 2
    assert any(k.startswith("discriminator.heads.") for k in state["state_dict"])
    start = torch.load(stage1, map_location="cpu", weights_only=True)["state_dict"]
    weights = state["state_dict"]
    assert not torch.equal(weights["model.head.weight"], start["ema.head.weight"])  # the generator stepped
    assert not torch.equal(weights["discriminator.backbone.blocks.0.mlp.0.weight"], start["ema.blocks.0.mlp.0.weight"])
    events = EventAccumulator(str(tmp_path / "stage3")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_d", "train/loss_g", "train/r1", "train/r2", "train/d_accuracy", "val/stream_mse_1step",
            "val/next_frame_mse", "val/copy_mse", "val/critic/objects_painted_out_margin",
            "val/critic/block_texture_p_real_higher"} <= tags
    assert all(torch.isfinite(torch.tensor(e.value)) for e in events.Scalars("train/loss_g"))


def test_stage3_distillation_regresses_onto_the_teachers_frames(chain, toy_data, tmp_path):
    """With the generator and teacher the same stage-1 model and a 1-step teacher, the targets are the generator's
    own rollout frames: the first G update's distillation loss is zero (any misalignment of frames, noises or
    context makes it positive); after the generator steps it is not."""
    stage1 = str(chain / "stage1/checkpoints/last.ckpt")
    config = tiny_config("stage3", tmp_path, toy_data, steps=6, init_from=stage1,
                         discriminator={"init_from": stage1, "updates_before_g": 0},
                         rollout={"frames": 8, "segment_frames": 4},
                         regression={"distill_weight": 1.0, "teacher_steps": 1})
    fit(config)
    values = [e.value for e in EventAccumulator(str(tmp_path / "stage3")).Reload().Scalars("train/distill")]
    assert len(values) == 3 and values[0] < 1e-9 < values[-1]


def test_stage3_continues_real_context_frames_exactly_as_the_teacher_forced_layout(chain, toy_data, tmp_path):
    """`rollout.context_frames: 2`: the rollout observes the clip's frame 1 through the cache, with its noise, and
    generates from frame 2. With the generator as its own 1-step teacher, teacher-forced on that video, the
    distillation term is zero at the first update (observing frame 1 with other noise, or generating it, is not)."""
    stage1 = str(chain / "stage1/checkpoints/last.ckpt")
    config = tiny_config("stage3", tmp_path, toy_data, steps=2, init_from=stage1,
                         discriminator={"init_from": stage1, "updates_before_g": 0},
                         rollout={"frames": 8, "segment_frames": 4, "context_frames": 2},
                         regression={"distill_weight": 1.0, "teacher_steps": 1})
    fit(config)
    values = [e.value for e in EventAccumulator(str(tmp_path / "stage3")).Reload().Scalars("train/distill")]
    assert len(values) == 1 and values[0] < 1e-12  # float round-off only (other noise for frame 1 gives ~1e-9)


def test_stage3_truth_regression_pulls_the_rollout_onto_the_real_clip(chain, toy_data, tmp_path):
    """With `regression.truth_weight` dominating, the generator's own rollout (from the clip's first frame, under its
    actions) moves towards the real clip: the logged regression falls over a few updates. Frames past the clip
    (8-frame rollouts of 6-frame clips) have no counterpart and are left out, so it stays finite."""
    stage1 = str(chain / "stage1/checkpoints/last.ckpt")
    config = tiny_config("stage3", tmp_path, toy_data, steps=24, init_from=stage1,
                         discriminator={"init_from": stage1, "updates_before_g": 0}, rollout={"frames": 8},
                         regression={"truth_weight": 1000.0})
    fit(config, "--model.init_args.optimizer.lr=3e-3")
    values = [e.value for e in EventAccumulator(str(tmp_path / "stage3")).Reload().Scalars("train/truth")]
    assert len(values) == 12 and all(math.isfinite(v) for v in values)
    assert sum(values[-3:]) < 0.8 * sum(values[:3])


def test_stage3_negatives_teach_the_discriminator_that_a_vanishing_object_is_fake(chain, toy_data, tmp_path):
    """`discriminator.negative_weight`: D-only updates (an endless warm-up) also pair every real segment with itself
    faded in its most detailed window from a random frame on; the logged share of faded frames D ranks below the
    real ones rises from chance."""
    stage1 = str(chain / "stage1/checkpoints/last.ckpt")
    config = tiny_config("stage3", tmp_path, toy_data, steps=30, init_from=stage1, rollout={"frames": 6},
                         discriminator={"init_from": stage1, "updates_before_g": 1000, "negative_weight": 1.0,
                                        "negative_size": 1})
    fit(config, "--model.init_args.discriminator.optimizer.lr=3e-3")
    accuracy = [e.value for e in EventAccumulator(str(tmp_path / "stage3")).Reload()
                .Scalars("train/negative_accuracy")]
    assert len(accuracy) == 30  # one D update a step, logged every step
    assert sum(accuracy[-5:]) / 5 > max(sum(accuracy[:3]) / 3, 0.5) + 0.1, accuracy


def test_stage3_refuses_segments_longer_than_the_real_clips(chain, toy_data, tmp_path):
    stage1 = str(chain / "stage1/checkpoints/last.ckpt")
    config = tiny_config("stage3", tmp_path, toy_data, steps=2, init_from=stage1,
                         discriminator={"init_from": stage1},
                         rollout={"frames": 10, "segment_frames": 8})  # the tiny clips have 6 frames
    with pytest.raises(ValueError, match=r"rollout.segment_frames=8 is longer than the real clips \(data.num_frames="):
        fit(config)


def test_teacher_forcing_refuses_a_long_rollout():
    from lightning_aapt.stages.adversarial_config import RolloutConfig

    with pytest.raises(ValueError, match=r"model.init_args.rollout.forcing='teacher'.*rollout.frames unset"):
        RolloutConfig(frames=11, forcing="teacher")
