"""Wan 2.1 / 2.2 text-to-video transformers as `CausalVideoDiT`s: `load_wan(path)`.

Reads each of Wan's published layouts, told apart by their tensor names (never by file names):
  diffusers  `WanTransformer3DModel`: a folder with config.json and diffusion_pytorch_model*.safetensors (one
             file, or shards listed by an index), or a pipeline folder holding it in transformer/ (Wan 2.2
             A14B's second, low-noise expert sits in transformer_2/: pass that folder to load it).
  original   Wan's own repository (`WanModel`): a folder with config.json and safetensors, or one .safetensors,
             .pth or .pt file (ComfyUI's `model.diffusion_model.` prefix is stripped).

The mapping (`weight_sources`) renames, fuses q/k/v (and the cross-attention's k/v) and reorders the output
rows; every weight but the output layer is then a flat copy (a fusion is a concatenation of rows, the patch
convolution (D, C, 1, p, p) is already in `patchify`'s (C, p, p) feature order). Weights are read from the
files straight into the model's final tensors and assigned onto a model built on the meta device: one copy in
memory. The result is the pretrained bidirectional model (stage 0's form); `convert_to_causal` makes it causal.

Wan's conventions are this project's: x_t = (1 - t) x0 + t noise, v = noise - x0, the timestep fed as 1000 t
through [cos, sin] features; adaLN shift/scale/gate; interleaved 3-D RoPE split 44/42/42 at head dim 128. The one
layout option Wan needs is `qk_norm="across_heads"` (RMSNorm over all D channels of q and k). Image-to-video and
VACE weights have no place in a text-to-video backbone and are refused by name. Depends on torch only.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from lightning_aapt.backbone.attention import AttentionBackend
from lightning_aapt.backbone.config import PRESETS, BackboneConfig
from lightning_aapt.backbone.model import CausalVideoDiT

log = logging.getLogger(__name__)

Format = Literal["diffusers", "original"]
PREFIXES = ("model.diffusion_model.", "diffusion_model.")  # ComfyUI / single-file checkpoints
WAN_HEAD_DIM = 128  # every published Wan model: heads = dim / 128 when no config says otherwise

# Our module <- (diffusers, original) modules; a tuple of sources is concatenated along the output rows.
_LINEARS = {  # weight and bias
    "patch_embed": ("patch_embedding", "patch_embedding"),
    "time_embed.0": ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    "time_embed.2": ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    "time_proj.1": ("condition_embedder.time_proj", "time_projection.1"),
    "text_embed.0": ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    "text_embed.2": ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    "head": ("proj_out", "head.head"),
}
_BLOCK_LINEARS = {
    "self_attn.qkv": (("attn1.to_q", "attn1.to_k", "attn1.to_v"), ("self_attn.q", "self_attn.k", "self_attn.v")),
    "self_attn.proj": ("attn1.to_out.0", "self_attn.o"),
    "cross_attn.q": ("attn2.to_q", "cross_attn.q"),
    "cross_attn.kv": (("attn2.to_k", "attn2.to_v"), ("cross_attn.k", "cross_attn.v")),
    "cross_attn.proj": ("attn2.to_out.0", "cross_attn.o"),
    "norm3": ("norm2", "norm3"),  # the cross-attention's affine LayerNorm (diffusers swaps the names)
    "mlp.0": ("ffn.net.0.proj", "ffn.0"),
    "mlp.2": ("ffn.net.2", "ffn.2"),
}
_BLOCK_NORMS = {  # weight only
    "self_attn.q_norm": ("attn1.norm_q", "self_attn.norm_q"),
    "self_attn.k_norm": ("attn1.norm_k", "self_attn.norm_k"),
    "cross_attn.q_norm": ("attn2.norm_q", "cross_attn.norm_q"),
    "cross_attn.k_norm": ("attn2.norm_k", "cross_attn.norm_k"),
}
_PARAMETERS = {"head_modulation": ("scale_shift_table", "head.modulation")}  # (1, 2, D) -> (2, D)
_BLOCK_PARAMETERS = {"modulation": ("scale_shift_table", "modulation")}  # (1, 6, D) -> (6, D)
_IMAGE_TO_VIDEO = re.compile(r"image_embedder|img_emb|add_[kv]_proj|norm_added_k|[kv]_img|norm_k_img|vace")


def weight_sources(fmt: Format, depth: int, qk_norm: bool = True) -> dict[str, tuple[str, ...]]:
    """Each of our parameter names -> the Wan tensor names it is made of, in row order."""
    col = 0 if fmt == "diffusers" else 1
    table: dict[str, tuple[str, ...]] = {}

    def add(ours: str, pair: tuple, suffixes: tuple[str, ...]) -> None:
        sources = pair[col] if isinstance(pair[col], tuple) else (pair[col],)
        for suffix in suffixes:
            table[ours + suffix] = tuple(s + suffix for s in sources)

    for ours, pair in _LINEARS.items():
        add(ours, pair, (".weight", ".bias"))
    for ours, pair in _PARAMETERS.items():
        add(ours, pair, ("",))
    for i in range(depth):
        def block(pair: tuple, i: int = i) -> tuple:
            return tuple(tuple(f"blocks.{i}.{s}" for s in x) if isinstance(x, tuple) else f"blocks.{i}.{x}"
                         for x in pair)

        for ours, pair in _BLOCK_LINEARS.items():
            add(f"blocks.{i}.{ours}", block(pair), (".weight", ".bias"))
        for ours, pair in _BLOCK_PARAMETERS.items():
            add(f"blocks.{i}.{ours}", block(pair), ("",))
        if qk_norm:
            for ours, pair in _BLOCK_NORMS.items():
                add(f"blocks.{i}.{ours}", block(pair), (".weight",))
    return table


# ------------------------------------------------------------------------------------------- reading files


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn,
                       "F8_E5M2": torch.float8_e5m2}


class SafetensorsFile:
    """A .safetensors file's header, and reads of single tensors straight into given memory (no mmap, no copy).

    Kept instead of the `safetensors` library's loader on purpose: reading each tensor straight into the model's
    own parameter, `load_wan` peaks at 1.06x the file's size (a random 1.3B-layout checkpoint in bf16: 2.80 GiB for
    2.64, docs/real-models.md), where a state dict read whole and then copied in holds the tensors twice while it
    is copied."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size))
        except (OSError, struct.error, ValueError) as err:
            raise ValueError(f"{path}: not a readable .safetensors file ({type(err).__name__}: {err})") from err
        header.pop("__metadata__", None)
        self.data_start = 8 + size
        self.entries = header  # name -> {"dtype", "shape", "data_offsets": [begin, end]}

    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.entries[key]["shape"])

    def dtype(self, key: str) -> torch.dtype:
        return _SAFETENSORS_DTYPES[self.entries[key]["dtype"]]

    def read_into(self, key: str, out: Tensor) -> None:
        """Fill the contiguous `out` (same number of elements) with tensor `key`, cast to `out`'s dtype."""
        entry = self.entries[key]
        dtype = self.dtype(key)
        target = out if out.dtype == dtype else torch.empty(out.shape, dtype=dtype)
        begin, end = entry["data_offsets"]
        raw = target.view(-1).view(torch.uint8) if target.numel() else target.new_empty(0, dtype=torch.uint8)
        if raw.numel() != end - begin:
            raise ValueError(f"{self.path}: tensor {key} holds {end - begin} bytes, expected {raw.numel()}")
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            if f.readinto(memoryview(raw.numpy())) != end - begin:
                raise ValueError(f"{self.path}: truncated (tensor {key} ends past the end of the file)")
        if target is not out:
            out.copy_(target)


class TorchFile:
    """A .pth/.pt state dict, memory-mapped (its tensors are read when copied)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: not a readable torch file ({type(err).__name__}: {err})") from err
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        self.tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}

    def names(self) -> list[str]:
        return list(self.tensors)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.tensors[key].shape)

    def dtype(self, key: str) -> torch.dtype:
        return self.tensors[key].dtype

    def read_into(self, key: str, out: Tensor) -> None:
        out.copy_(self.tensors[key].reshape(out.shape))


def is_wan_checkpoint(path: str | Path) -> bool:
    """Whether `path` is given as a Wan transformer (a diffusers/Wan folder or a .safetensors/.pth/.pt file) rather
    than a lightning_aapt stage checkpoint (.ckpt, or a sharded checkpoint folder)."""
    path = Path(path)
    if path.is_file():
        return path.suffix in (".safetensors", ".pth", ".pt")
    for config in (path / "config.json", path / "transformer" / "config.json"):
        if config.is_file():
            return json.loads(config.read_text()).get("_class_name") in ("WanTransformer3DModel", "WanModel")
    return False


def _weight_files(path: Path) -> tuple[list[Path], dict]:
    """The weight files and the config.json (or {}) of a Wan checkpoint given as a folder or a file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such Wan checkpoint (a diffusers or Wan folder, or a weights file)")
    if path.is_file():
        return [path], {}
    if not any(path.glob("*.safetensors")) and (path / "transformer").is_dir():
        path = path / "transformer"  # a whole diffusers pipeline
    config = {}
    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text())
    indexes = sorted(path.glob("*.safetensors.index.json"))
    if indexes:
        shards = sorted(set(json.loads(indexes[0].read_text())["weight_map"].values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise FileNotFoundError(f"{path}: {indexes[0].name} lists shards that are not there: {missing}")
        return [path / s for s in shards], config
    files = sorted(path.glob("*.safetensors")) or sorted([*path.glob("*.pth"), *path.glob("*.pt")])
    if not files:
        raise FileNotFoundError(f"{path}: no .safetensors (or .pth/.pt) weights in this folder")
    return files, config


@dataclass
class WanCheckpoint:
    """What a Wan checkpoint holds, read from its headers: `inspect_wan(path)`."""

    path: Path
    format: Format
    config: BackboneConfig  # the bidirectional backbone the weights fill
    preset: str | None  # the named preset equal to `config`, if any
    files: list[Path]
    sources: dict[str, SafetensorsFile | TorchFile]  # Wan tensor name (prefix stripped) -> its file
    keys: dict[str, str]  # Wan tensor name (prefix stripped) -> its name in the file
    plan: dict[str, tuple[str, ...]]  # our parameter -> the Wan tensors it is read from (`weight_plan`)


def inspect_wan(path: str | Path, **overrides) -> WanCheckpoint:
    """Find the files, tell the format, and infer the backbone config from the weights' shapes (plus config.json
    for the head count). `overrides` are BackboneConfig fields the weights do not record (`num_heads` for a single
    file, where the default is dim / 128 as in every published Wan model)."""
    path = Path(path)
    files, config_json = _weight_files(path)
    sources, keys = {}, {}
    for file in files:
        reader = SafetensorsFile(file) if file.suffix == ".safetensors" else TorchFile(file)
        for key in reader.names():
            name = next((key[len(p):] for p in PREFIXES if key.startswith(p)), key)
            sources[name], keys[name] = reader, key
    refused = sorted(k for k in sources if _IMAGE_TO_VIDEO.search(k))
    if refused or config_json.get("model_type") in ("i2v", "flf2v", "vace"):
        raise ValueError(f"{path}: an image-to-video (or VACE) Wan checkpoint ({', '.join(refused[:4])}"
                         f"{', ...' if len(refused) > 4 else ''}); lightning_aapt loads Wan's text-to-video "
                         "transformers (Wan2.1-T2V-1.3B/14B, Wan2.2-TI2V-5B, Wan2.2-T2V-A14B's experts)")
    if "condition_embedder.time_embedder.linear_1.weight" in sources:
        fmt: Format = "diffusers"
    elif "time_embedding.0.weight" in sources:
        fmt = "original"
    else:
        raise ValueError(f"{path}: not a Wan transformer: neither diffusers' names "
                         "(condition_embedder.time_embedder.linear_1.weight) nor Wan's own (time_embedding.0.weight) "
                         f"are among its {len(sources)} tensors (e.g. {sorted(sources)[:3]})")
    shapes = {k: sources[k].shape(keys[k]) for k in sources}
    cfg = _infer_config(fmt, shapes, config_json, path, overrides)
    preset = next((name for name, p in PRESETS.items() if p == cfg), None)
    return WanCheckpoint(path, fmt, cfg, preset, files, sources, keys, weight_plan(path, fmt, cfg, shapes))


def _infer_config(fmt: Format, shapes: dict[str, tuple[int, ...]], config_json: dict, path: Path,
                  overrides: dict) -> BackboneConfig:
    table = weight_sources(fmt, 1)
    first = {ours: src[0] for ours, src in table.items()}

    def shape(ours: str) -> tuple[int, ...]:
        source = first[ours]
        if source not in shapes:
            raise ValueError(f"{path}: missing Wan tensor {source} (for {ours})")
        return shapes[source]

    D, C, pt, p, _ = shape("patch_embed.weight")
    head_rows = shape("head.weight")[0]
    if pt != 1 or head_rows % (p * p):
        raise ValueError(f"{path}: patch size {(pt, p, p)} (output rows {head_rows}); lightning_aapt models a "
                         "per-frame 2-D patch (1, p, p) as every published Wan model has")
    if head_rows // (p * p) != C:
        raise ValueError(f"{path}: {C} input channels but {head_rows // (p * p)} output channels: an "
                         "image-to-video model (it concatenates a conditioning latent); load a text-to-video one")
    depth = 1 + max(int(m.group(1)) for k in shapes if (m := re.match(r"blocks\.(\d+)\.", k)))
    norm = shapes.get(first["blocks.0.self_attn.q_norm.weight"])
    heads = config_json.get("num_attention_heads") or config_json.get("num_heads") or overrides.get("num_heads")
    if heads is None:
        if D % WAN_HEAD_DIM:
            raise ValueError(f"{path}: no config.json gives the head count and dim={D} is not a multiple of "
                             f"{WAN_HEAD_DIM}: pass num_heads=")
        heads = D // WAN_HEAD_DIM
    qk_norm = "none" if norm is None else "across_heads" if norm[0] == D else "per_head"
    eps = config_json.get("eps", 1e-6)
    if abs(eps - 1e-6) > 1e-12:
        raise ValueError(f"{path}: config.json eps={eps}; the backbone's norms use Wan's 1e-6")
    fields = dict(latent_channels=C, patch_size=p, dim=D, depth=depth, num_heads=heads,
                  mlp_dim=shape("blocks.0.mlp.0.weight")[0],
                  text_dim=shape("text_embed.0.weight")[1], freq_dim=shape("time_embed.0.weight")[1],
                  qk_norm=qk_norm, bidirectional=True, recycled_input=False, window_frames=None)
    return BackboneConfig(**{**fields, **overrides})


# ------------------------------------------------------------------------------------------------- loading


def load_wan(path: str | Path, *, dtype: torch.dtype | None = None, attention_backend: AttentionBackend = "auto",
             **overrides) -> CausalVideoDiT:
    """The bidirectional `CausalVideoDiT` holding a Wan text-to-video transformer's weights (see the module
    docstring for the layouts read). `dtype`: cast every weight (None: keep each file's dtype). `overrides`:
    BackboneConfig fields the weights do not record (e.g. `num_heads` for a single file)."""
    ckpt = inspect_wan(path, **overrides)
    with torch.device("meta"):
        model = CausalVideoDiT(ckpt.config, attention_backend)
    state = {}
    for ours, target in model.named_parameters():
        sources = ckpt.plan[ours]
        first = ckpt.sources[sources[0]]
        state[ours] = torch.empty(target.shape, dtype=dtype or first.dtype(ckpt.keys[sources[0]]))
        _fill(state[ours], ours, sources, ckpt)
    model.load_state_dict(state, strict=True, assign=True)
    log.info("loaded a Wan transformer (%s layout, preset %s) from %s", ckpt.format, ckpt.preset, ckpt.path)
    return model


def weight_plan(ckpt_path: Path, fmt: Format, cfg: BackboneConfig, shapes: dict[str, tuple[int, ...]]
                ) -> dict[str, tuple[str, ...]]:
    """Our parameter -> the Wan tensors it is read from, checked against a meta-device backbone: every Wan tensor
    has a place, every parameter a source, and the sizes add up. Reads no weight."""
    with torch.device("meta"):
        targets = dict(CausalVideoDiT(cfg).named_parameters())
    plan = weight_sources(fmt, cfg.depth, cfg.qk_norm != "none")
    used = {s for sources in plan.values() for s in sources}
    missing, unused = sorted(used - set(shapes)), sorted(set(shapes) - used)
    if missing or unused or set(plan) != set(targets):
        raise ValueError(f"{ckpt_path}: the Wan tensors do not fit a {cfg.depth}-block backbone: missing "
                         f"{missing[:6]}{' ...' if len(missing) > 6 else ''}, without a place {unused[:6]}"
                         f"{' ...' if len(unused) > 6 else ''}")
    for ours, sources in plan.items():
        size = sum(torch.Size(shapes[s]).numel() for s in sources)
        if size != targets[ours].numel():
            raise ValueError(f"{ckpt_path}: {' + '.join(sources)} {[shapes[s] for s in sources]} do not fill "
                             f"{ours} {tuple(targets[ours].shape)}")
    return plan


def _fill(out: Tensor, ours: str, sources: tuple[str, ...], ckpt: WanCheckpoint) -> None:
    """Read the Wan tensors `sources` into our parameter `out` (sizes checked by `weight_plan`)."""
    if ours.startswith("head."):  # Wan's output rows are (p_h, p_w, C), ours (C, p_h, p_w)
        p, C = ckpt.config.patch_size, ckpt.config.latent_channels
        wan = torch.empty(out.shape, dtype=out.dtype)
        ckpt.sources[sources[0]].read_into(ckpt.keys[sources[0]], wan)
        out.copy_(wan.unflatten(0, (p, p, C)).movedim(2, 0).reshape(out.shape))
        return
    flat, offset = out.view(-1), 0
    for source in sources:
        size = torch.Size(ckpt.sources[source].shape(ckpt.keys[source])).numel()
        ckpt.sources[source].read_into(ckpt.keys[source], flat[offset:offset + size])
        offset += size
