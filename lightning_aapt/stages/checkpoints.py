"""Stage checkpoints: writing them atomically, and reading backbone weights out of them (`init_from`)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_aapt.backbone import AttentionBackend, BackboneConfig, CausalVideoDiT
from lightning_aapt.backbone.model import load_converted
from lightning_aapt.backbone.wan import is_wan_checkpoint, load_wan
from lightning_aapt.files import atomic_path
from lightning_aapt.stages.lora import LoraConfig, is_lora_state, merged_state


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written under a temporary name and renamed into place, so a run killed mid-write never
    leaves a truncated `last.ckpt`; an unreadable checkpoint is reported with its path.
    Use as `trainer.plugins: [{class_path: lightning_aapt.stages.checkpoints.AtomicCheckpointIO}]`."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        if not Path(path).exists():
            raise FileNotFoundError(f"ckpt_path={path}: no such checkpoint")
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except Exception as err:
            raise ValueError(f"ckpt_path={path}: unreadable checkpoint (truncated, or not a Lightning checkpoint): "
                             f"{type(err).__name__}: {err}") from err


def read_sharded_checkpoint(path: Path) -> dict:
    """A checkpoint folder written by ModelParallelStrategy(save_distributed_checkpoint=True), read whole in one
    process: its metadata (`meta.pt`) plus the full `state_dict` (optimizer shards are not read)."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint import load as dcp_load
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    checkpoint = torch.load(path / "meta.pt", map_location="cpu", weights_only=True)
    reader = FileSystemReader(str(path))
    stored = reader.read_metadata().state_dict_metadata
    weights = {key.removeprefix("state_dict."): torch.empty(meta.size, dtype=meta.properties.dtype)
               for key, meta in stored.items()
               if key.startswith("state_dict.") and isinstance(meta, TensorStorageMetadata)}
    state = {"state_dict": weights}
    dcp_load(state, storage_reader=reader)  # no process group: reads in this process alone
    checkpoint["state_dict"] = state["state_dict"]
    return checkpoint


def load_backbone(path: str | Path, prefer_ema: bool = True, attention_backend: AttentionBackend = "auto"
                  ) -> CausalVideoDiT:
    """The backbone stored in a stage checkpoint (a file, or a sharded checkpoint folder), with its EMA weights
    when present (docs/architecture.md §5) and LoRA adapters merged, or a Wan transformer (`backbone.wan.load_wan`:
    a diffusers or Wan folder, a .safetensors/.pth file), running attention with `attention_backend`."""
    path = Path(path)
    if is_wan_checkpoint(path):
        return load_wan(path, attention_backend=attention_backend)
    if path.is_dir() and (path / "meta.pt").is_file():
        try:
            checkpoint = read_sharded_checkpoint(path)
        except Exception as err:
            raise ValueError(f"init_from={path}: unreadable sharded checkpoint ({type(err).__name__}: {err})") from err
        return backbone_from_checkpoint(checkpoint, path, prefer_ema, attention_backend)
    if not path.is_file():
        stage = re.search(r"stage(\d)", str(path))
        make = (f"`python -m lightning_aapt fit --config experiments/stage{stage.group(1)}.yaml` writes it"
                if stage else "train the stage that writes it first")
        raise FileNotFoundError(f"{path}: no such checkpoint; {make}, or point init_from / disc_init_from at "
                                "an existing checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"init_from={path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    return backbone_from_checkpoint(checkpoint, path, prefer_ema, attention_backend)


def recorded_settings(path: str | Path) -> dict:
    """The stage settings (`hyper_parameters`) a checkpoint file or sharded folder records; {} for a Wan path or a
    plain backbone checkpoint (`merge`)."""
    path = Path(path)
    if is_wan_checkpoint(path):
        return {}
    source = path / "meta.pt" if path.is_dir() else path
    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=True, mmap=not path.is_dir())
    except Exception as err:
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    return dict(checkpoint.get("hyper_parameters") or {})


def save_backbone(model: CausalVideoDiT, path: str | Path, **extra) -> None:
    """Write `model` as a plain backbone checkpoint (`backbone_config` and its weights under `model.`, no optimizer
    state), atomically: what `load_backbone` and `init_from` read; `extra` entries are stored beside them."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"backbone_config": dataclasses.asdict(model.cfg), "state_dict": state, **extra}, tmp)


# Run settings that checkpoints written before they left `BackboneConfig` still record with the architecture.
FORMER_RUN_SETTINGS = ("attention_backend", "max_cache_frames")


def recorded_backbone(saved: dict) -> BackboneConfig:
    """The architecture a checkpoint's `backbone_config` records."""
    return BackboneConfig(**{k: v for k, v in saved.items() if k not in FORMER_RUN_SETTINGS})


def backbone_from_checkpoint(checkpoint: dict, path: Path, prefer_ema: bool = True,
                             attention_backend: AttentionBackend = "auto") -> CausalVideoDiT:
    if "backbone_config" not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(f"init_from={path}: not a lightning_aapt stage checkpoint (no backbone_config/state_dict)")
    model = CausalVideoDiT(recorded_backbone(checkpoint["backbone_config"]), attention_backend)
    state = checkpoint["state_dict"]
    prefix = "ema." if prefer_ema and any(k.startswith("ema.") for k in state) else "model."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if checkpoint.get("lora") is not None:  # a LoRA stage: adapters folded into the base weights
        weights = merged_state(weights, LoraConfig(**checkpoint["lora"]))
    elif is_lora_state(weights):
        raise ValueError(f"init_from={path}: the weights hold LoRA adapters but the checkpoint records no `lora` "
                         "settings to merge them with")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ValueError(f"init_from={path}: weights under '{prefix}' do not match the recorded config: {err}") from err
    return model


def init_backbone_from(model: CausalVideoDiT, path: str | Path) -> None:
    """Load a checkpoint's backbone into `model` strictly, new zero-initialised input groups aside.

    The checkpoint may hold the bidirectional form (stage 0, or a pretrained Wan transformer) and `model` the causal
    one: recycled-frame (and new control) projections keep their zero initialisation, everything else must match
    exactly or this raises, naming the mismatch.
    """
    source = load_backbone(path)
    load_converted(model, source.state_dict(), f"init_from={path}")
