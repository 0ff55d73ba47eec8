"""`load_wan` against diffusers' own Wan transformer (the oracle): a wrong name, fusion or row order fails these.

Needs the `[wan]` extra (diffusers); run with `python -m pytest -m wan`.
"""

import json
import struct

import pytest
import torch

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT, convert_to_causal
from lightning_aapt.backbone.config import PRESETS
from lightning_aapt.checkpoints.wan import inspect_wan, load_wan, weight_sources
from tests.helpers import frames_slice

pytestmark = pytest.mark.wan
diffusers = pytest.importorskip("diffusers")

TINY = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=24, in_channels=4, out_channels=4,
            text_dim=16, freq_dim=32, ffn_dim=96, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)


@pytest.fixture(scope="module")
def reference():
    """A tiny diffusers Wan transformer with every parameter random (norms, modulation tables, head included)."""
    torch.manual_seed(0)
    model = diffusers.WanTransformer3DModel(**TINY).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
            else:
                p.copy_(0.9 * torch.randn_like(p) / p.shape[-1] ** 0.5)
    return model


@pytest.fixture(scope="module")
def saved(reference, tmp_path_factory):
    """The reference saved by diffusers as one file and as shards with an index."""
    root = tmp_path_factory.mktemp("wan")
    reference.save_pretrained(root / "single")
    reference.save_pretrained(root / "sharded", max_shard_size="50KB")
    assert len(list((root / "sharded").glob("*.safetensors"))) > 1
    return root


def unit_inputs(frames: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, frames, 8, 8, generator=g)  # (B, C, F, H, W), diffusers' layout
    text = torch.randn(2, 7, 16, generator=g)
    text[:, 5:] = 0  # Wan's zero padding after the prompt
    return x, text


@pytest.mark.parametrize("layout", ["single", "sharded"])
@pytest.mark.parametrize("frames", [2, 3])
@pytest.mark.parametrize("per_frame", [False, True], ids=["per-clip-t", "per-frame-t"])
def test_load_wan_equals_diffusers(reference, saved, layout, frames, per_frame):
    ours = load_wan(saved / layout).eval()
    assert ours.cfg.qk_norm == "across_heads" and ours.cfg.bidirectional
    x, text = unit_inputs(frames)
    t = torch.tensor([[0.3, 0.9, 0.55][:frames], [1.0, 0.05, 0.7][:frames]]) if per_frame else \
        torch.tensor([0.3, 0.8])[:, None].expand(2, frames)
    tokens = (8 // 2) * (8 // 2)
    with torch.no_grad():
        timestep = (1000 * t).repeat_interleave(tokens, dim=1) if per_frame else 1000 * t[:, 0]
        want = reference(x, timestep, text).sample  # (B, C, F, H, W)
        got = ours(x.transpose(1, 2), t, None, text).transpose(1, 2)
    assert want.abs().max() > 1  # a real signal through every layer
    assert (got - want).abs().max() <= 1e-5


def original_names(reference) -> dict[str, torch.Tensor]:
    """The reference's weights under Wan's own names (the inverse of our two name tables)."""
    depth = TINY["num_layers"]
    ours_from_diffusers = weight_sources("diffusers", depth)
    ours_from_original = weight_sources("original", depth)
    state = reference.state_dict()
    return {o: state[d].clone() for ours in ours_from_diffusers
            for d, o in zip(ours_from_diffusers[ours], ours_from_original[ours], strict=True)}


def test_original_names_are_what_diffusers_converts(reference):
    """diffusers' own single-file converter maps our original-layout names back onto its model exactly."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    converted = convert_wan_transformer_to_diffusers(original_names(reference))
    state = reference.state_dict()
    assert set(converted) == set(state)
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_original_layouts_load_the_same_weights(reference, saved, tmp_path):
    from safetensors.torch import save_file

    original = original_names(reference)
    folder = tmp_path / "original"
    folder.mkdir()
    save_file(original, folder / "diffusion_pytorch_model.safetensors")
    (folder / "config.json").write_text(json.dumps({"_class_name": "WanModel", "model_type": "t2v", "dim": 48,
                                                    "num_heads": 2, "num_layers": 2, "eps": 1e-6}))
    single = tmp_path / "comfy.safetensors"  # one file, ComfyUI's prefix, no config: heads given
    save_file({f"model.diffusion_model.{k}": v for k, v in original.items()}, single)
    pth = tmp_path / "wan.pth"
    torch.save(original, pth)
    expected = load_wan(saved / "single").state_dict()
    for path, overrides in ((folder, {}), (single, {"num_heads": 2}), (pth, {"num_heads": 2})):
        assert inspect_wan(path, **overrides).format == "original"
        state = load_wan(path, **overrides).state_dict()
        assert set(state) == set(expected)
        assert all(torch.equal(state[k], expected[k]) for k in expected), path


def write_header_only(path, shapes: dict[str, tuple[int, ...]], dtype: str = "BF16") -> None:
    """A .safetensors header describing `shapes` with no data: the layout of a real checkpoint at no cost."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2 * torch.Size(shape).numel()
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


REAL = {  # diffusers' configs of the published text-to-video transformers
    "wan2.1-t2v-1.3b": dict(num_attention_heads=12, num_layers=30, ffn_dim=8960, in_channels=16, out_channels=16),
    "wan2.1-t2v-14b": dict(num_attention_heads=40, num_layers=40, ffn_dim=13824, in_channels=16, out_channels=16),
    "wan2.2-ti2v-5b": dict(num_attention_heads=24, num_layers=30, ffn_dim=14336, in_channels=48, out_channels=48),
}


@pytest.mark.parametrize("preset", sorted(REAL))
def test_every_real_weight_maps(preset, tmp_path):
    """The published layouts, built on the meta device by diffusers: every tensor has a place of the right size,
    the preset is recognised, and the parameter counts agree (no weight is allocated)."""
    config = dict(patch_size=(1, 2, 2), attention_head_dim=128, text_dim=4096, freq_dim=256, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", eps=1e-6, **REAL[preset])
    with torch.device("meta"):
        reference = diffusers.WanTransformer3DModel(**config)
    shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    folder = tmp_path / preset
    folder.mkdir()
    write_header_only(folder / "diffusion_pytorch_model.safetensors", shapes)
    (folder / "config.json").write_text(json.dumps({"_class_name": "WanTransformer3DModel", **config}))
    ckpt = inspect_wan(folder)
    assert ckpt.preset == preset and ckpt.config == PRESETS[preset]
    with torch.device("meta"):
        ours = CausalVideoDiT(ckpt.config)
    assert sum(p.numel() for p in ours.parameters()) == sum(torch.Size(s).numel() for s in shapes.values())
    if preset == "wan2.1-t2v-1.3b":
        assert sum(p.numel() for p in ours.parameters()) == 1_418_996_800


def test_causal_form_streams_like_its_masked_full_pass(saved):
    """After `convert_to_causal` (window 2, one sink), the frame-by-frame cached stream equals the full masked pass."""
    model = convert_to_causal(load_wan(saved / "single"), window_frames=2, sink_frames=1).eval()
    torch.nn.init.normal_(model.recycled_embed.weight, std=0.3)  # zero-initialised: make the recycled input count
    g = torch.Generator().manual_seed(3)
    frames = 6
    inputs = dict(latents=torch.randn(2, frames, 4, 8, 8, generator=g), timesteps=torch.rand(2, frames, generator=g),
                  recycled=torch.randn(2, frames, 4, 8, 8, generator=g), text=torch.randn(2, 7, 16, generator=g),
                  controls=None)
    with torch.no_grad():
        full = model(**inputs)
        cache = model.new_cache(2)
        streamed = torch.cat([model(**frames_slice(inputs, f, f + 1), cache=cache) for f in range(frames)], dim=1)
    assert full.abs().max() > 1
    torch.testing.assert_close(streamed, full, atol=2e-5, rtol=1e-5)


def test_refuses_image_to_video_and_foreign_files(tmp_path):
    i2v = tmp_path / "i2v"
    i2v.mkdir()
    write_header_only(i2v / "diffusion_pytorch_model.safetensors",
                      {"condition_embedder.time_embedder.linear_1.weight": (48, 32),
                       "condition_embedder.image_embedder.ff.net.0.proj.weight": (48, 16)})
    with pytest.raises(ValueError, match=r"image-to-video.*image_embedder"):
        inspect_wan(i2v)
    other = tmp_path / "other.safetensors"
    write_header_only(other, {"encoder.conv_in.weight": (8, 3, 3, 3)})
    with pytest.raises(ValueError, match="not a Wan transformer"):
        inspect_wan(other)
    with pytest.raises(FileNotFoundError, match="no such Wan checkpoint"):
        load_wan(tmp_path / "missing")


def test_the_1_3b_preset_is_wan_made_causal():
    assert PRESETS["wan-1.3b-like"] == PRESETS["wan2.1-t2v-1.3b"].replace(
        bidirectional=False, recycled_input=True, window_frames=30, sink_frames=1)
    assert BackboneConfig(qk_norm=True).qk_norm == "per_head"  # older checkpoints record a bool


def test_init_from_accepts_a_wan_folder(saved):
    """A stage's causal backbone initialised from a Wan folder is the converted Wan model, new inputs at zero."""
    from lightning_aapt.checkpoints import init_backbone_from

    wan = load_wan(saved / "single")
    causal = wan.cfg.replace(bidirectional=False, recycled_input=True, window_frames=2, control_dim=3)
    model = CausalVideoDiT(causal)
    init_backbone_from(model, saved / "single")
    expected = convert_to_causal(wan, window_frames=2, control_dim=3).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    assert model.recycled_embed.weight.abs().max() == 0 and model.control_embed.weight.abs().max() == 0
    with pytest.raises(ValueError, match=r"init_from=.*do not fit"):
        init_backbone_from(CausalVideoDiT(causal.replace(qk_norm="per_head")), saved / "single")
