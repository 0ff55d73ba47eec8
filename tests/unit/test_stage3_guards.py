"""Stage 3's bookkeeping: non-finite guards per network, discriminator warm-up."""

import lightning as L
import pytest
import torch

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.stages import AdversarialPostTraining
from lightning_aapt.stages.adversarial_config import DiscriminatorConfig, PenaltyConfig, RegressionConfig, RolloutConfig

pytestmark = pytest.mark.unit


def tiny_stage3(**kwargs) -> AdversarialPostTraining:
    cfg = BackboneConfig.preset("tiny", bidirectional=False, recycled_input=True, window_frames=4, sink_frames=1)
    return AdversarialPostTraining(cfg, max_bad_steps=3, **kwargs)


def test_a_generator_that_is_never_finite_aborts_although_the_discriminator_steps_fine():
    module = tiny_stage3()
    module.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)  # its strategy
    module.log = lambda *args, **kwargs: None  # outside a fit loop; what is logged is not under test here
    opt_g = torch.optim.SGD(module.model.parameters(), lr=0.0)
    opt_d = torch.optim.SGD(module.discriminator.parameters(), lr=0.0)
    with pytest.raises(RuntimeError, match="non-finite G losses"):
        for _ in range(5):  # D and G alternate, as in training_step; only G is bad
            assert module.apply_update(opt_d, torch.tensor(0.7), module.discriminator.parameters(), "d")
            assert not module.apply_update(opt_g, torch.tensor(float("nan")), module.model.parameters(), "g")
    assert module.bad_steps == {"d": 0, "g": 3}


@pytest.mark.parametrize(("group", "settings", "key"), [
    (DiscriminatorConfig, {"updates_before_g": -1}, "discriminator.updates_before_g must be >= 0"),
    (DiscriminatorConfig, {"updates_per_g": 0}, "discriminator.updates_per_g must be >= 1"),
    (DiscriminatorConfig, {"negative_weight": -1.0}, "discriminator.negative_weight must be >= 0"),
    (DiscriminatorConfig, {"negative_size": 0}, "discriminator.negative_size must be >= 1"),
    (DiscriminatorConfig, {"timestep_shift": 0.0}, "discriminator.timestep_shift must be a finite number > 0"),
    (RolloutConfig, {"frames": 1}, "rollout.frames must be >= 2"),
    (RolloutConfig, {"context_frames": 0}, "rollout.context_frames must be >= 1"),
    (RolloutConfig, {"segment_frames": 4, "segment_overlap": 4}, "rollout.segment_overlap must be >= 0 and below"),
    (RolloutConfig, {"forcing": "self"}, "rollout.forcing must be 'student' or 'teacher'"),
    (PenaltyConfig, {"r1_gamma": -1.0}, "penalty.r1_gamma must be a finite number >= 0"),
    (PenaltyConfig, {"sigma": 0.0}, "penalty.sigma must be a finite number > 0"),
    (RegressionConfig, {"teacher_steps": 0}, "regression.teacher_steps must be >= 1"),
    (RegressionConfig, {"truth_weight": float("nan")}, "regression.truth_weight must be a finite number >= 0"),
])
def test_each_setting_group_refuses_by_its_key(group, settings, key):
    with pytest.raises(ValueError, match=f"^model.init_args.{key}"):
        group(**settings)


def test_distillation_needs_the_teacher_it_samples():
    with pytest.raises(ValueError, match=r"regression.distill_weight > 0 samples.*discriminator.init_from"):
        tiny_stage3(regression=RegressionConfig(distill_weight=1.0))


def test_discriminator_timesteps_follow_their_shift():
    """D's t is U(0, 1) shifted by discriminator.timestep_shift: unshifted by default (AAPT); a shift below 1 moves the
    median of t from 0.5 to s / (1 + s), towards frames D can see."""
    draws = {s: tiny_stage3(discriminator=DiscriminatorConfig(timestep_shift=s)).disc_timesteps(4000, 3)
             for s in (1.0, 1 / 3)}
    assert abs(draws[1.0].median().item() - 0.5) < 0.03
    assert abs(draws[1 / 3].median().item() - 0.25) < 0.03
    assert draws[1 / 3].min() >= 0 and draws[1 / 3].max() < 1
