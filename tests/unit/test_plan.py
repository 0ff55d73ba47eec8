"""`plan`: exact parameter counts, FLOPs that match torch's FLOP counter, memory that shrinks with sharding."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.plan import Workload, average_visible, forward_flops, parameter_count, plan

pytestmark = pytest.mark.unit


def test_parameter_count_is_exact():
    cfg = BackboneConfig.preset("toy")
    assert parameter_count(cfg) == sum(p.numel() for p in CausalVideoDiT(cfg).parameters())


@pytest.mark.parametrize("layout", [dict(window_frames=4, sink_frames=1), dict(window_frames=None, sink_frames=0)])
def test_flops_per_streamed_frame_match_the_flop_counter(layout):
    # the reference attention is plain matmuls, which the counter sees (CPU SDPA kernels it does not count)
    cfg = BackboneConfig.preset("tiny", dim=64, num_heads=2, **layout)
    model = CausalVideoDiT(cfg, attention_backend="reference").eval()
    h = w = 8
    text = torch.randn(1, 5, cfg.text_dim)
    cache = model.new_cache(1)
    with torch.no_grad():
        for _ in range(9):  # fill past the window, then count frame 9
            x = torch.randn(1, 1, cfg.latent_channels, h, w)
            model(x, torch.rand(1, 1), torch.randn_like(x), text, None, cache)
        counter = FlopCounterMode(display=False)
        with counter:
            model(x, torch.rand(1, 1), torch.randn_like(x), text, None, cache)
    visible = (cfg.window_frames + cfg.sink_frames) if cfg.window_frames else 10
    tokens = (h // cfg.patch_size) * (w // cfg.patch_size)
    predicted = forward_flops(cfg, tokens, 1, visible, text_tokens=5, text_kv_cached=True)
    assert counter.get_total_flops() == pytest.approx(predicted, rel=0.05)


def test_average_visible_follows_the_mask_rule():
    cfg = BackboneConfig.preset("tiny", window_frames=2, sink_frames=1)
    # frames 0..4 see 1, 2, 2+1, 2+1, 2+1 key frames
    assert average_visible(5, cfg) == pytest.approx((1 + 2 + 3 + 3 + 3) / 5)


def test_fsdp_divides_the_states_and_the_8b_preset_is_planned():
    cfg = BackboneConfig.preset("aapt-8b-like")
    fsdp, ddp = (plan(cfg, Workload(gpus=8, sharding=s)) for s in ("fsdp", "ddp"))
    assert 7.5e9 < fsdp["parameters"] < 8.5e9
    assert ddp["memory_states"] == pytest.approx(8 * fsdp["memory_states"])
    assert fsdp["memory_total"] < 80 * 2**30 < ddp["memory_total"]
    assert fsdp["flops_per_generated_frame"] > 2 * fsdp["parameters"] * fsdp["tokens_per_frame"]  # + attention


def test_lora_and_frozen_teachers_are_counted():
    from lightning_aapt.backbone.lora import LoraConfig, add_lora
    from lightning_aapt.plan import trainable_parameters

    cfg = BackboneConfig.preset("tiny", control_dim=2)
    lora = LoraConfig(rank=3)
    model = add_lora(CausalVideoDiT(cfg), lora)
    assert trainable_parameters(cfg, lora) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    wan = BackboneConfig.preset("wan2.1-t2v-1.3b")
    one, teacher = plan(wan, Workload(gpus=8)), plan(wan, Workload(gpus=8, stage=2, frozen_networks=1))
    assert teacher["memory_states"] - one["memory_states"] == pytest.approx(4 * one["parameters"] / 8)
    adapted = plan(wan, Workload(gpus=1, sharding="ddp", lora=LoraConfig(rank=32)))
    assert adapted["trained_parameters"] < 0.05 * adapted["parameters"]
    assert adapted["memory_states"] < 0.3 * plan(wan, Workload(gpus=1, sharding="ddp"))["memory_states"]


def test_stage3_plans_the_rollout_the_stage_rolls_out_under_the_mask_rule():
    cfg = BackboneConfig.preset("tiny", control_dim=2).replace(window_frames=4, sink_frames=1)
    base = {"latent_size": (4, 4), "frames": 8, "stage": 3, "gpus": 1}

    def flops(**work) -> float:
        return plan(cfg, Workload(**base, **work))["flops_per_training_step"]

    assert flops() == flops(rollout_frames=8) != flops(rollout_frames=16)  # the clip by default, as the stage
    assert flops(rollout_frames=4, segment_frames=6) == flops(rollout_frames=6, segment_frames=6)  # >= a segment
    assert flops(rollout_frames=6) == flops()  # a segment is the whole clip by default
    assert average_visible(10, cfg) == (1 + 2 + 3 + 4 + 5 * 6) / 10  # window 4 + 1 sink, counted by hand
