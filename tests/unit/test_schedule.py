"""Learning-rate schedules: stages 0-2 warm up, hold, cool down to 0 at max_steps; stage 3 warms each network up."""

import itertools
from types import SimpleNamespace

import pytest
import torch

from lightning_aapt.backbone import BackboneConfig
from lightning_aapt.stages import DiffusionAdaptation
from lightning_aapt.stages.optim import OptimizerConfig

pytestmark = pytest.mark.unit


def stage1(max_steps: int, **optimizer) -> DiffusionAdaptation:
    cfg = BackboneConfig.preset("tiny", bidirectional=False, recycled_input=True, window_frames=4, sink_frames=1)
    module = DiffusionAdaptation(cfg, optimizer=OptimizerConfig(lr=1.0, **optimizer))
    module._trainer = SimpleNamespace(max_steps=max_steps)  # configure_optimizers reads trainer.max_steps only
    return module


def rates(module: DiffusionAdaptation, steps: int) -> list[float]:
    """The learning rate of each of the first `steps` optimizer steps, as the scheduler sets it."""
    setup = module.configure_optimizers()
    optimizer, schedule = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return out


def test_warm_up_then_constant_then_cool_down_to_zero_at_max_steps():
    lr = rates(stage1(100, warmup_steps=10, cooldown_steps=20), 100)
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)  # warm-up: (step + 1) / 10
    assert lr[10:80] == pytest.approx([1.0] * 70)  # constant until the cool-down
    assert lr[80] == pytest.approx(1.0) and lr[90] == pytest.approx(0.5) and lr[99] == pytest.approx(0.05)
    assert all(a > b for a, b in itertools.pairwise(lr[80:]))  # falls every step to 1/20 at the last


def test_without_cool_down_the_rate_stays_constant_to_the_end():
    assert rates(stage1(50, warmup_steps=1), 50) == pytest.approx([1.0] * 50)


def test_a_cool_down_longer_than_the_run_is_refused_naming_both_keys():
    with pytest.raises(ValueError, match=r"cooldown_steps=200.*max_steps=100"):
        stage1(100, cooldown_steps=200).configure_optimizers()
    with pytest.raises(ValueError, match=r"cooldown_steps=5.*max_steps=-1"):
        stage1(-1, cooldown_steps=5).configure_optimizers()
    with pytest.raises(ValueError, match="cooldown_steps must be >= 0"):
        stage1(100, cooldown_steps=-1).configure_optimizers()


def test_stage3_warms_each_network_up_over_its_own_updates_and_refuses_a_cool_down():
    from lightning_aapt.stages import AdversarialPostTraining
    from lightning_aapt.stages.adversarial_config import DiscriminatorConfig

    cfg = BackboneConfig.preset("tiny", bidirectional=False, recycled_input=True, window_frames=4, sink_frames=1)
    gan = {"betas": (0.0, 0.9), "weight_decay": 0.0}
    module = AdversarialPostTraining(cfg, optimizer=OptimizerConfig(lr=1.0, warmup_steps=4, **gan),
                                     discriminator=DiscriminatorConfig(optimizer=OptimizerConfig(lr=2.0, warmup_steps=0,
                                                                                                 **gan)))
    (opt_g, opt_d), (warm_g, warm_d) = module.configure_optimizers()
    assert isinstance(opt_g, torch.optim.AdamW) and isinstance(opt_d, torch.optim.AdamW)
    g_rates = []
    for _ in range(6):
        g_rates.append(opt_g.param_groups[0]["lr"])
        assert opt_d.param_groups[0]["lr"] == pytest.approx(2.0)  # no warm-up: the full rate from the first update
        opt_g.step(), warm_g.step(), opt_d.step(), warm_d.step()
    assert g_rates == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"model.init_args.discriminator.optimizer.cooldown_steps=5.*no cool-down"):
        AdversarialPostTraining(cfg, discriminator=DiscriminatorConfig(optimizer=OptimizerConfig(cooldown_steps=5))
                                ).configure_optimizers()
