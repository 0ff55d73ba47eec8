"""LoRA of the backbone (backbone/lora.py): frozen base, zero start, and merging back equal to the adapted model."""

import pytest
import torch

from lightning_aapt.backbone.lora import LoraConfig, add_lora, merged_state
from lightning_aapt.stages.averaging import averaged_copy, move_average
from lightning_aapt.stages.optim import OptimizerConfig, adamw
from tests.helpers import randomize, tiny_inputs, tiny_model

pytestmark = pytest.mark.unit
CFG = LoraConfig(rank=3, alpha=7.0)  # alpha != rank: a merge that forgot the scale would fail


def adapted(seed: int = 0):
    model = add_lora(tiny_model(seed), CFG)
    with torch.no_grad():  # adapters away from their zero start
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


def test_adapters_start_at_zero_and_only_they_train():
    plain = tiny_model(0)
    inputs = tiny_inputs(plain.cfg, 2, 3)
    expected = plain(**inputs)
    model = add_lora(tiny_model(0), CFG)
    torch.testing.assert_close(model(**inputs), expected, atol=0, rtol=0)  # B = 0: the output is unchanged
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n == "recycled_embed.weight" for n in trainable)
    assert "recycled_embed.weight" in trainable  # a causal conversion's new input trains whole
    wrapped = {n.rsplit(".lora_A", 1)[0] for n in trainable if ".lora_A." in n}
    assert len(wrapped) == 7 * plain.cfg.depth  # every linear layer of every block
    optimizer = adamw(model.named_parameters(), OptimizerConfig())
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(trainable)


def test_merged_weights_compute_what_the_adapted_model_does():
    model = adapted().eval()
    inputs = tiny_inputs(model.cfg, 2, 3)
    plain = tiny_model(5)  # other weights, all overwritten by the merge
    plain.load_state_dict(merged_state(model.state_dict(), CFG), strict=True)
    with torch.no_grad():
        difference = (plain(**inputs) - model(**inputs)).abs().max().item()
        moved = (plain(**inputs) - tiny_model(0)(**inputs)).abs().max().item()
    assert difference < 1e-5 and moved > 1e-2


def test_merge_names_an_incomplete_adapter():
    state = adapted().state_dict()
    del state["blocks.0.mlp.0.lora_B.default.weight"]
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp\.0 are incomplete"):
        merged_state(state, CFG)


def test_unknown_target_is_named_with_the_layers_there_are():
    with pytest.raises(ValueError, match=r"\['attn\.to_q'\] match no linear layer.*self_attn\.qkv"):
        add_lora(tiny_model(0), LoraConfig(targets=("self_attn.qkv", "attn.to_q")))
    with pytest.raises(ValueError, match="rank >= 1"):
        LoraConfig(rank=0)


def test_the_average_shares_the_frozen_base_and_moves_the_adapters():
    model = adapted()
    ema = averaged_copy(model)
    pairs = dict(zip([n for n, _ in model.named_parameters()], zip(ema.parameters(), model.parameters(),
                                                                   strict=True), strict=True))
    base, adapter = pairs["blocks.0.mlp.0.base_layer.weight"], pairs["blocks.0.mlp.0.lora_A.default.weight"]
    assert base[0] is base[1] and adapter[0] is not adapter[1]
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        randomize(model.get_submodule("blocks.0.mlp.0.lora_A"), seed=3)
    before = adapter[0].clone()
    move_average(ema, model, 0.5)
    torch.testing.assert_close(adapter[0], (before + adapter[1]) / 2)


def test_lora_refuses_sharding():
    from lightning_aapt.stages import DiffusionAdaptation

    module = DiffusionAdaptation(tiny_model(0).cfg, lora=CFG)
    module._device_mesh = object()  # what ModelParallelStrategy hands a module
    with pytest.raises(ValueError, match="lora trains on one device or under DDP"):
        module.configure_model()
