"""`load_wan` holds one copy of the weights: peak memory on a random checkpoint with Wan2.1-T2V-1.3B's layout."""

import json
import struct
import subprocess
import sys

import pytest
import torch

from lightning_aapt.backbone import BackboneConfig, CausalVideoDiT
from lightning_aapt.checkpoints.wan import weight_sources

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * 3600)]  # long runs: up to hours


def diffusers_shapes(cfg: BackboneConfig) -> dict[str, tuple[int, ...]]:
    """The diffusers tensor names and shapes of a Wan transformer of this config (fused rows split evenly)."""
    with torch.device("meta"):
        ours = dict(CausalVideoDiT(cfg).named_parameters())
    shapes = {}
    for name, sources in weight_sources("diffusers", cfg.depth).items():
        shape = tuple(ours[name].shape)
        for source in sources:
            shapes[source] = (shape[0] // len(sources), *shape[1:])
    D, p = cfg.dim, cfg.patch_size
    shapes["patch_embedding.weight"] = (D, cfg.latent_channels, 1, p, p)
    shapes["scale_shift_table"] = (1, 2, D)
    for i in range(cfg.depth):
        shapes[f"blocks.{i}.scale_shift_table"] = (1, 6, D)
    return shapes


def write_random_safetensors(path, shapes: dict[str, tuple[int, ...]]) -> None:
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2 * torch.Size(shape).numel()
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    g = torch.Generator().manual_seed(0)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for shape in shapes.values():
            f.write((0.02 * torch.randn(shape, generator=g)).to(torch.bfloat16).view(torch.uint8).numpy().tobytes())


MEASURE = """
import sys
from lightning_aapt.checkpoints.wan import load_wan
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) * 1024
before = hwm()
model = load_wan(sys.argv[1])
print(hwm() - before, sum(p.numel() * p.element_size() for p in model.parameters()))
"""


def test_load_wan_peak_memory_is_about_the_file_size(tmp_path):
    cfg = BackboneConfig.preset("wan2.1-t2v-1.3b")
    folder = tmp_path / "wan"
    folder.mkdir()
    weights = folder / "diffusion_pytorch_model.safetensors"
    write_random_safetensors(weights, diffusers_shapes(cfg))
    (folder / "config.json").write_text(json.dumps({"_class_name": "WanTransformer3DModel", "num_attention_heads": 12}))
    out = subprocess.run([sys.executable, "-c", MEASURE, str(folder)], capture_output=True, text=True, check=True)
    peak, loaded = map(int, out.stdout.split())
    size = weights.stat().st_size
    assert loaded == 2 * 1_418_996_800  # every weight, in the file's bf16
    print(f"file {size / 2**30:.2f} GiB, peak while loading {peak / 2**30:.2f} GiB ({peak / size:.2f}x)")
    assert peak <= 1.3 * size
