"""Does training learn? The quick start's own four stages, chained as README line 1 chains them (opt in:
`python -m pytest -m slow`; about 30 minutes on 2 CPU cores).

experiments/stage0.yaml ... stage3.yaml as shipped (the 32-px toy world and its learned codec, a 1.2M-parameter causal
model, the quick start's step counts), with only the evaluation callbacks dropped and paths (the codec's too) in a
temporary directory. What is asserted are margins over floors the data itself defines (copying the previous frame;
chance; the stage-2 generator stage 3 starts from), not recorded values of an earlier run.
"""

from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers_cli import EXPERIMENTS, fit, merge, shipped_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * 3600)]  # long runs: up to hours


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Where the quick start's toy world is rendered (by the first stage that runs, from its config, after training
    its codec beside it)."""
    return tmp_path_factory.mktemp("toy32") / "data"


def stage_config(stage: str, tmp_path, data_dir, steps: int | None = None, **model_args):
    """experiments/<stage>.yaml as shipped (or cut to `steps`), without its evaluation callbacks."""
    config = shipped_config(stage)
    trainer = config["trainer"]
    trainer["callbacks"] = [c for c in trainer["callbacks"] if c["class_path"].startswith("lightning.")]
    if steps is not None:
        trainer.update(max_steps=steps, val_check_interval=steps)
        for callback in trainer["callbacks"]:
            if callback["class_path"].endswith("ModelCheckpoint"):
                callback["init_args"]["every_n_train_steps"] = steps
    trainer.update(default_root_dir=str(tmp_path / stage), enable_progress_bar=False, enable_model_summary=False)
    trainer["logger"]["init_args"]["save_dir"] = str(tmp_path)
    merge(config["model"]["init_args"], model_args)
    world = yaml.safe_load(Path(config["data"]["init_args"]["toy_world"]).read_text())
    if "codec_path" in world:
        world["codec_path"] = str(data_dir.parent / "codec.pt")
    config["data"]["init_args"].update(data_dir=str(data_dir), toy_world=world)
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def last(run, stage: str) -> str:
    return str(run / stage / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def chain(data_dir, tmp_path_factory):
    """Stages 0, 1 and 2 of the quick start, each from the one before (shared by the tests below)."""
    run = tmp_path_factory.mktemp("quickstart")
    fit(stage_config("stage0", run, data_dir))
    fit(stage_config("stage1", run, data_dir, init_from=last(run, "stage0")))
    fit(stage_config("stage2", run, data_dir, init_from=last(run, "stage1")))
    return run


def scalars(run_dir, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return [e.value for e in EventAccumulator(str(run_dir)).Reload().Scalars(tag)]


def test_stage1_beats_copying_the_previous_frame(chain):
    """Teacher-forced one-step (t = 1) next-frame prediction: an untrained model scores far above copying the
    previous frame; after the quick start's stage 1 the model must be clearly below it."""
    state = torch.load(last(chain, "stage1"), map_location="cpu", weights_only=True)
    assert state["global_step"] == yaml.safe_load((EXPERIMENTS / "stage1.yaml").read_text())["trainer"]["max_steps"]
    error, copy = scalars(chain / "stage1", "val/next_frame_mse")[-1], scalars(chain / "stage1", "val/copy_mse")[-1]
    assert error < 0.8 * copy, (error, copy)


def test_stage1_passes_sprites_on(chain, data_dir):
    """Issue 32's stage-1 gate, first half, at the quick start's budget: fed 2 real frames of 64 validation scenes,
    one step (1 NFE, teacher-forced) passes a sprite on at nearly full contrast (object a_out(1) >= 0.97: a stream
    that loses 3% a frame halves a sprite in 23 frames; measured once: 0.990)."""
    from lightning_aapt.checkpoints import load_backbone
    from lightning_aapt.evaluation.transfer import transfer_metrics, validation_transfer

    transfer = transfer_metrics(validation_transfer(load_backbone(last(chain, "stage1")).eval(), data_dir, 64, 8))
    assert transfer["objects_a_out_1"] >= 0.97, transfer


@pytest.mark.xfail(strict=True, reason="issue 32's motion gate is not met at the quick start's budget: on the pixels "
                   "of pushed sprites stage 1 is no better than copying the previous frame (measured once: 0.99x)")
def test_stage1_learns_how_the_agent_pushes_sprites(chain, data_dir):
    """Issue 32's stage-1 gate, second half: teacher-forced, stage 1 predicts the pixels of sprites that move (the
    pushed ones) at most 0.5x as wrongly as copying the previous frame."""
    from lightning_aapt.checkpoints import load_backbone
    from lightning_aapt.evaluation.transfer import transfer_metrics, validation_transfer

    transfer = transfer_metrics(validation_transfer(load_backbone(last(chain, "stage1")).eval(), data_dir, 64, 8))
    assert transfer["objects_error_vs_copy"] <= 0.5, transfer


def test_stage3_discriminator_learns_to_separate_real_from_generated(chain, data_dir, tmp_path):
    """Stage 3's discriminator, from the stage-1 weights with fresh heads, learns to tell real from generated frames
    in a warm-up against the stage-2 generator: over its last 20 of 60 updates it ranks the real frame of a pair
    above the generated one (paired per frame, `train/d_accuracy`; chance is 0.5) clearly more often than over its
    first 10 and than chance (measured once on the pushed-sprites world: 0.70 over the first 10, 0.81 over the last
    20; on the moving-sprites world 0.52 and 0.62: the better the generator, the harder the task)."""
    warmup = 60
    config = stage_config("stage3", tmp_path, data_dir, steps=warmup, init_from=last(chain, "stage2"),
                          discriminator={"init_from": last(chain, "stage1"), "updates_before_g": warmup})
    fit(config, "--trainer.log_every_n_steps=1")
    accuracy = scalars(tmp_path / "stage3", "train/d_accuracy")
    assert len(accuracy) >= 30
    early, late = sum(accuracy[:10]) / 10, sum(accuracy[-20:]) / 20
    assert late > max(early, 0.5) + 0.05, (early, late)


@pytest.mark.xfail(strict=True, reason="issue 32's discriminator gate is not met by the shipped recipe: after its "
                   "100-update warm-up the discriminator rates real clips with their sprites painted out as MORE real "
                   "(measured at its training noise levels: margin -5.46 logits, P(real higher) 0.001); "
                   "discriminator.negative_weight meets it (+3.12, P 0.97) but is not shipped, see docs/objects.md")
def test_stage3_discriminator_sees_objects_before_the_generator_trains(chain, data_dir, tmp_path):
    """Issue 32's discriminator gate: after the shipped warm-up (D only, against the stage-2 generator) it tells
    real clips from the same clips with their sprites painted out: P(real higher) > 0.9 and a margin of at least
    0.5 logit, clean (t = 0) and at its training noise levels (`evaluation/critic.py`, 64 validation scenes)."""
    from lightning_aapt.checkpoints import load_discriminator
    from lightning_aapt.evaluation.critic import critic_margins

    shipped = shipped_config("stage3")["model"]["init_args"]
    warmup = shipped["discriminator"]["updates_before_g"]
    fit(stage_config("stage3", tmp_path, data_dir, steps=warmup, init_from=last(chain, "stage2"),
                     discriminator={"init_from": last(chain, "stage1")}))
    objects = critic_margins(load_discriminator(last(tmp_path, "stage3")).eval(), data_dir, 64, 8, times=(0.0,),
                             timestep_shift=shipped["discriminator"]["timestep_shift"])["objects_painted_out"]
    for at in ("t=0", "t~train"):
        assert objects[f"margin@{at}"] >= 0.5 and objects[f"p_real_higher@{at}"] > 0.9, objects


def agent_error(checkpoint, data_dir, scenes: int = 64, frames: int = 80) -> float:
    """Mean agent position error (px) of 1-NFE streams of `frames` frames after 2 real ones, over validation scenes
    of the toy world at `data_dir`, against the world's re-rendering of the same actions (the report's measure)."""
    from lightning_aapt.checkpoints import load_backbone
    from lightning_aapt.data import dataset_codec
    from lightning_aapt.evaluation.toy import policy_actions, score_toy_video, stream_toy_clips
    from lightning_aapt.world.dataset import clip_seeds, spec_from_manifest

    toy = spec_from_manifest(data_dir)
    seeds = [clip_seeds(toy, "val", i) for i in range(scenes)]
    actions = policy_actions([a for _, a in seeds], frames, toy.persistence)
    model = load_backbone(checkpoint).eval()
    stream = stream_toy_clips(model, dataset_codec(data_dir), toy.text_encoder(), toy.world,
                              [s for s, _ in seeds], actions, steps=1, context_frames=2)
    curve = score_toy_video(stream.generated, stream, window=8).curves["agent_error_px"]
    return sum(curve) / len(curve)


@pytest.mark.xfail(strict=True, reason="on the pushed-sprites world the quick start's stage 3 loses the agent where "
                   "it runs into a sprite: from a fresh clone its mean agent error was 4.04 px against stage 2's 3.61 "
                   "(an experiment chain read 2.84 against 4.05), see docs/objects.md")
def test_stage3_lowers_drift_against_its_stage2_start(chain, data_dir, tmp_path):
    """The quick start's stage 3 (student-forced rollouts from 2 real frames, long video, a light regression onto
    the real clip) from the stage-2 generator: streamed 80 frames (10x the 8-frame clips stages 1-2 train on) after
    2 real frames of 64 validation scenes, its agent error is below its starting point's by a margin."""
    fit(stage_config("stage3", tmp_path, data_dir, init_from=last(chain, "stage2"),
                     discriminator={"init_from": last(chain, "stage1")}))
    before, after = agent_error(last(chain, "stage2"), data_dir), agent_error(last(tmp_path, "stage3"), data_dir)
    assert after < 0.8 * before, (before, after)
