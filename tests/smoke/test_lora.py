"""A LoRA stage-1 fit from a pretrained (bidirectional) backbone: only the adapters and the new input projection
move, the checkpoint records the settings, a resumed run ends where the uninterrupted one does, and the
checkpoint's readers (load_backbone, `merge`) see the merged plain backbone."""


import pytest
import torch

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.backbone.lora import LoraConfig, add_lora
from lightning_aapt.checkpoints import load_backbone, save_backbone
from lightning_aapt.cli import main
from lightning_aapt.stages import DiffusionAdaptation
from tests.helpers import randomize, tiny_inputs
from tests.helpers_cli import TINY_BACKBONE, checkpointing_only, fit, tiny_config
from tests.helpers_parallel import scalars

pytestmark = pytest.mark.smoke
LORA = {"rank": 4, "alpha": 8.0}
PRETRAINED = BackboneConfig(**TINY_BACKBONE, latent_channels=48, text_dim=64, control_dim=2, bidirectional=True,
                            recycled_input=False)


def lora_config(tmp_path, data, base, name):
    (tmp_path / name).mkdir()
    return checkpointing_only(tiny_config("stage1", tmp_path / name, data, steps=4, init_from=str(base), lora=LORA), 2)


def test_lora_stage_trains_resumes_and_merges(toy_data, tmp_path):
    pretrained = randomize(CausalVideoDiT(PRETRAINED), seed=0, std=0.05)
    base = tmp_path / "pretrained.ckpt"
    save_backbone(pretrained, base)

    whole = lora_config(tmp_path, toy_data, base, "whole")
    fit(whole)
    checkpoints = tmp_path / "whole" / "stage1" / "checkpoints"
    ckpt = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4 and ckpt["lora"]["rank"] == 4 and ckpt["lora"]["alpha"] == 8.0
    state = ckpt["state_dict"]
    for key, value in pretrained.state_dict().items():  # the base never moves ...
        module, _, param = key.rpartition(".")
        stored = state.get(f"model.{module}.base_layer.{param}", state.get(f"model.{key}"))
        if key not in ("recycled_embed.weight", "control_embed.weight"):
            torch.testing.assert_close(stored, value, atol=0, rtol=0, msg=key)
    assert state["model.blocks.0.mlp.0.lora_B.default.weight"].abs().max() > 0  # ... the adapters do,
    assert state["model.recycled_embed.weight"].abs().max() > 0  # and so does the new input, from zero
    adapted = add_lora(CausalVideoDiT(load_backbone(checkpoints / "last.ckpt").cfg), LoraConfig(**LORA))
    trainable = [p for p in adapted.parameters() if p.requires_grad]
    assert len(ckpt["optimizer_states"][0]["state"]) == len(trainable) < len(list(adapted.parameters()))

    # Resumed from its step-2 checkpoint, the same run ends with the same weights.
    resumed = lora_config(tmp_path, toy_data, base, "resumed")
    fit(resumed, "--ckpt_path", str(checkpoints / "step000002.ckpt"))
    assert sorted(scalars(tmp_path / "resumed" / "stage1", "train/loss")) == [2, 3]  # it did resume at step 2
    again = torch.load(tmp_path / "resumed" / "stage1" / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=True)["state_dict"]
    for key, value in state.items():
        torch.testing.assert_close(again[key], value, atol=1e-6, rtol=1e-5, msg=key)

    # Readers see the merged plain backbone: it computes what the adapted EMA does.
    adapted.load_state_dict({k[len("ema."):]: v for k, v in state.items() if k.startswith("ema.")}, strict=True)
    merged = load_backbone(checkpoints / "last.ckpt")
    assert not any(".lora_" in k for k in merged.state_dict())
    inputs = tiny_inputs(merged.cfg, 2, 3)
    inputs["latents"] = inputs["recycled"] = torch.randn(2, 3, 48, 4, 4)
    with torch.no_grad():
        assert (merged(**inputs) - adapted(**inputs)).abs().max() < 1e-5
    out = tmp_path / "merged.ckpt"
    assert main(["merge", "--ckpt", str(checkpoints / "last.ckpt"), "--out", str(out)]) == 0
    plain = load_backbone(out)
    for key, value in merged.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[key], value, atol=0, rtol=0)

    # A module without LoRA refuses to resume a LoRA checkpoint, naming the setting.
    with pytest.raises(ValueError, match="LoRA settings differ"):
        DiffusionAdaptation(merged.cfg).on_load_checkpoint(ckpt)

    # Stages 2 and 3 take LoRA too, starting from the merged LoRA checkpoints before them; their bases stay put.
    stage1 = str(checkpoints / "last.ckpt")
    fit(tiny_config("stage2", tmp_path, toy_data, steps=2, init_from=stage1, grid_steps=4, eval_steps=[1], lora=LORA))
    stage2 = tmp_path / "stage2" / "checkpoints" / "last.ckpt"
    fit(tiny_config("stage3", tmp_path, toy_data, steps=2, init_from=str(stage2),
                    discriminator={"init_from": stage1, "updates_before_g": 0}, lora=LORA))
    for earlier, later in ((stage1, stage2), (stage2, tmp_path / "stage3" / "checkpoints" / "last.ckpt")):
        start, state = load_backbone(earlier).state_dict(), torch.load(later, weights_only=True)["state_dict"]
        torch.testing.assert_close(state["model.blocks.1.self_attn.qkv.base_layer.weight"],
                                   start["blocks.1.self_attn.qkv.weight"], atol=0, rtol=0)
        assert state["model.blocks.1.self_attn.qkv.lora_B.default.weight"].abs().max() > 0
