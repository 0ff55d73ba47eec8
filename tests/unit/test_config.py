"""BackboneConfig validation and presets."""

import dataclasses

import pytest
import torch

from lightning_aapt.backbone import PRESETS, BackboneConfig, CausalVideoDiT

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("changes", "flag"), [
    ({"dim": 50, "num_heads": 4}, "num_heads"),
    ({"window_frames": 0}, "window_frames"),
    ({"sink_frames": -1}, "sink_frames"),
    ({"control_dim": -2}, "control_dim"),
    ({"patch_size": 0}, "patch_size"),
    ({"dim": 8, "num_heads": 2}, "head dim"),
])
def test_invalid_config_names_the_flag(changes, flag):
    with pytest.raises(ValueError, match=flag):
        BackboneConfig(**changes)


def test_attention_backend_is_a_run_setting_of_the_model():
    with pytest.raises(ValueError, match="attention_backend must be one of auto, sdpa, flex, reference"):
        CausalVideoDiT(BackboneConfig.preset("tiny"), attention_backend="xformers")
    assert not hasattr(BackboneConfig.preset("tiny"), "attention_backend")


def test_replace_gives_a_valid_config():
    cfg = dataclasses.replace(BackboneConfig.preset("tiny"), window_frames=4, sink_frames=1)
    assert (cfg.window_frames, cfg.sink_frames) == (4, 1)
    assert cfg.uses_sink_positions


def test_unknown_preset_lists_the_names():
    with pytest.raises(ValueError, match="tiny"):
        BackboneConfig.preset("huge")


def test_rope_split_covers_the_head_dim():
    for cfg in PRESETS.values():
        t, h, w = cfg.rope_split
        assert t + h + w == cfg.head_dim and t % 2 == h % 2 == w % 2 == 0 and min(t, h, w) > 0


def parameters(cfg: BackboneConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in CausalVideoDiT(cfg).parameters())


@pytest.mark.parametrize(("name", "low", "high"), [
    ("bench", 50e6, 150e6),
    ("wan-1.3b-like", 1.2e9, 1.6e9),
    ("aapt-8b-like", 7.5e9, 8.5e9),
])
def test_preset_sizes(name, low, high):
    assert low <= parameters(BackboneConfig.preset(name)) <= high


def test_wan_presets_have_wans_parameter_counts():
    # Wan2.1-T2V-1.3B's published parameter count; equal only with Wan's across-heads qk-norm layout.
    assert parameters(BackboneConfig.preset("wan2.1-t2v-1.3b")) == 1_418_996_800
    assert parameters(BackboneConfig.preset("wan2.1-t2v-1.3b", qk_norm="per_head")) == 1_418_996_800 - 30 * 4 * (
        1536 - 128)


def test_qk_norm_layouts():
    def norm_shapes(cfg):
        return {tuple(p.shape) for n, p in CausalVideoDiT(cfg).named_parameters() if "q_norm" in n}

    assert norm_shapes(BackboneConfig.preset("tiny", qk_norm="per_head")) == {(24,)}
    assert norm_shapes(BackboneConfig.preset("tiny", qk_norm="across_heads")) == {(48,)}
    assert norm_shapes(BackboneConfig.preset("tiny", qk_norm="none")) == set()
    assert BackboneConfig(qk_norm=True).qk_norm == "per_head" and BackboneConfig(qk_norm=False).qk_norm == "none"
    with pytest.raises(ValueError, match="qk_norm must be one of per_head, across_heads, none"):
        BackboneConfig(qk_norm="per_token")


def test_any_latent_size_divisible_by_the_patch_works():
    model = CausalVideoDiT(BackboneConfig.preset("tiny"))
    out = model(torch.randn(1, 2, 4, 6, 10), torch.rand(1, 2), torch.randn(1, 2, 4, 6, 10), torch.randn(1, 3, 16))
    assert out.shape == (1, 2, 4, 6, 10)
    with pytest.raises(ValueError, match="patch_size"):
        model(torch.randn(1, 2, 4, 5, 6), torch.rand(1, 2), torch.randn(1, 2, 4, 5, 6), torch.randn(1, 3, 16))
