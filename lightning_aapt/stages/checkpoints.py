"""Stage checkpoints: writing them atomically; reading them, by one reader that says what is wrong with a bad one;
checking that one fits the stage, backbone and settings it is used with; backbone weights out of them (`init_from`)."""

from __future__ import annotations

import dataclasses
import pickle
import re
import zipfile
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_aapt.backbone import AttentionBackend, BackboneConfig, CausalVideoDiT
from lightning_aapt.backbone.model import load_converted
from lightning_aapt.backbone.wan import is_wan_checkpoint, load_wan
from lightning_aapt.errors import CheckpointError
from lightning_aapt.files import atomic_path
from lightning_aapt.stages.lora import LoraConfig, is_lora_state, merged_state


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written under a temporary name and renamed into place, so a run killed mid-write never
    leaves a truncated `last.ckpt`; resuming reads through `read_checkpoint`, which names what is wrong with a bad one.
    Use as `trainer.plugins: [{class_path: lightning_aapt.stages.checkpoints.AtomicCheckpointIO}]`."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        try:
            with atomic_path(path) as tmp:
                self.write(checkpoint, tmp, storage_options)
        except OSError as err:  # a full disk, a lost mount: say which checkpoint, and that the earlier ones stand
            raise OSError(err.errno, f"checkpoint {path} not written ({err.strerror or err}); the checkpoints "
                          "written before it are intact") from err

    def write(self, checkpoint: dict, tmp: Path, storage_options=None) -> None:
        """Write the checkpoint to its temporary name."""
        super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return read_checkpoint(path, "--ckpt_path")  # on the CPU, as Lightning's own reader


# Lightning's names for a checkpoint it finds itself (`--ckpt_path last`).
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def read_checkpoint(path: str | Path, flag: str, weights: bool = True) -> dict:
    """The one reader of lightning_aapt checkpoints — `fit --ckpt_path`, `init_from`, `disc_init_from`, `eval`,
    `sample`, `play`, `merge` — a file, or a sharded checkpoint folder (ModelParallelStrategy), read on the CPU.

    Anything else is refused with a `CheckpointError` that names `flag`, the path and what is there: nothing, a
    folder that is not a sharded checkpoint, an empty or truncated file, a file that is not a torch checkpoint,
    one holding Python objects, or a torch file that is not a lightning_aapt checkpoint. `weights=False` reads the
    recorded settings only (a file's tensors are memory-mapped and never read; a folder's weights are skipped).
    """
    path = Path(path)
    where = f"{flag}={path}"
    if not path.exists():
        raise CheckpointError(f"{where}: no such file or folder{how_to_make(path)}")
    if path.is_dir():
        if not (path / "meta.pt").is_file():
            found = sorted(p.name for p in path.iterdir())[:6]
            raise CheckpointError(f"{where}: a folder without meta.pt, so not a sharded checkpoint folder (it holds "
                                  f"{found or 'nothing'}); give a .ckpt file or a folder written with "
                                  "save_distributed_checkpoint=True")
        try:
            checkpoint = read_sharded_checkpoint(path, weights)
        except Exception as err:
            raise CheckpointError(f"{where}: unreadable sharded checkpoint folder ({brief(err)})") from err
    else:
        checkpoint = read_torch_file(path, where, mmap=not weights)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "backbone_config" not in checkpoint:
        holds = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{where}: a torch file, but not a lightning_aapt checkpoint (no backbone_config and "
                              f"state_dict; it holds {holds}); a Wan transformer is read from .safetensors/.pth or "
                              "its diffusers folder")
    return checkpoint


def read_torch_file(path: Path, where: str, mmap: bool = False) -> dict:
    """torch.load(weights_only=True) of a file, each way it can fail said plainly (`mmap`: tensors mapped, not
    read)."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{where}: an empty file (0 bytes): its writer stopped before writing anything")
    with open(path, "rb") as f:
        head = f.read(40)
    archive = zipfile.is_zipfile(path)  # torch.save's format; before torch 1.6, a bare pickle
    if not archive and head.startswith(b"PK\x03\x04"):
        raise CheckpointError(f"{where}: truncated: a zip archive of {size:,} bytes without its end record (a write "
                              "cut short, or a partial copy); use an earlier checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and archive)
    except Exception as err:
        if not archive:
            raise CheckpointError(f"{where}: not a torch checkpoint (torch.save writes a zip archive; this file "
                                  f"starts with {describe_bytes(head)})") from err
        if isinstance(err, pickle.UnpicklingError):
            raise CheckpointError(f"{where}: holds Python objects beyond tensors and plain data, which "
                                  f"torch.load(weights_only=True) refuses ({brief(err)}); lightning_aapt "
                                  "checkpoints hold none") from err
        raise CheckpointError(f"{where}: a zip archive torch cannot read as a checkpoint ({brief(err)})") from err


def how_to_make(path: Path) -> str:
    stage = re.search(r"stage(\d)", str(path))
    return (f"; `python -m lightning_aapt fit --config experiments/stage{stage.group(1)}.yaml` writes it"
            if stage else "")


def describe_bytes(head: bytes) -> str:
    """A file's first bytes, as text when they are text."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\n\r\t" for c in text):
        return f"the text {text.splitlines()[0][:30]!r}" if text.strip() else "blank text"
    return f"the bytes {head[:8].hex(' ')}"


def brief(err: Exception) -> str:
    """An exception's type and the first line of its message."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def read_sharded_checkpoint(path: Path, weights: bool = True) -> dict:
    """A checkpoint folder written by ModelParallelStrategy(save_distributed_checkpoint=True), read whole in one
    process: its metadata (`meta.pt`) plus the full `state_dict` (optimizer shards are not read; nor the weights,
    weights=False: `state_dict` is then {})."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint import load as dcp_load
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    checkpoint = torch.load(path / "meta.pt", map_location="cpu", weights_only=True)
    if not weights:
        return {"state_dict": {}, **checkpoint}
    reader = FileSystemReader(str(path))
    stored = reader.read_metadata().state_dict_metadata
    tensors = {key.removeprefix("state_dict."): torch.empty(meta.size, dtype=meta.properties.dtype)
               for key, meta in stored.items()
               if key.startswith("state_dict.") and isinstance(meta, TensorStorageMetadata)}
    state = {"state_dict": tensors}
    dcp_load(state, storage_reader=reader)  # no process group: reads in this process alone
    checkpoint["state_dict"] = state["state_dict"]
    return checkpoint


def stage_of(checkpoint: dict) -> str | None:
    """The class name of the stage that wrote a checkpoint; None for a plain backbone checkpoint (`merge`)."""
    recorded = checkpoint.get("stage") or (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    return recorded.rsplit(".", 1)[-1] if recorded else None


def check_stage(checkpoint: dict, stage: str, where: str) -> None:
    """Refuse a checkpoint another stage (class name `stage`) wrote, naming both."""
    recorded = stage_of(checkpoint)
    if recorded is not None and recorded != stage:
        raise CheckpointError(f"{where}: a {recorded} checkpoint, but the config's model.class_path is {stage}; give "
                              f"a {stage} checkpoint, the config of {recorded}, or start {stage} from this one with "
                              "model.init_args.init_from")


def backbone_differences(saved: dict, ours: BackboneConfig, where: str = "the checkpoint") -> str:
    """The architecture fields where a checkpoint's `backbone_config` and `ours` differ, as
    "dim: checkpoint 48 vs config 64, ..." ('' when they agree; run settings older checkpoints record are ignored)."""
    recorded = dataclasses.asdict(recorded_backbone(saved, where))
    differ = [f"{k}: checkpoint {recorded.get(k)!r} vs config {v!r}" for k, v in dataclasses.asdict(ours).items()
              if plain(recorded.get(k)) != plain(v)]
    return ", ".join(differ)


def check_backbone(checkpoint: dict, ours: BackboneConfig, where: str) -> None:
    """Refuse a checkpoint of another architecture, naming the fields that differ and both values."""
    differ = backbone_differences(checkpoint["backbone_config"], ours, where)
    if differ:
        raise CheckpointError(f"{where}: the checkpoint's backbone differs from model.init_args.backbone (with the "
                              f"data's widths): {differ}")


# How a stage runs, not what it trains: these may change when a run resumes.
RUN_SETTINGS = ("attention_backend", "parallel")


def settings_differences(recorded: dict, configured: dict, key: str = "model.init_args",
                         ignore: tuple[str, ...] = ()) -> list[str]:
    """The stage settings where a checkpoint's `hyper_parameters` and a config's `model.init_args` disagree, as
    "model.init_args.backbone.dim: checkpoint 48, config 64" (run settings, the data-linked `model_dims`, Lightning's
    own entries and `ignore` aside; a setting only one side knows is not compared)."""
    differ = []
    for name in sorted(set(recorded) & set(configured)):
        if name.startswith("_") or name in (*RUN_SETTINGS, "model_dims", *ignore):
            continue
        a, b = plain(recorded[name]), plain(configured[name])
        if isinstance(a, dict) and isinstance(b, dict):
            differ += settings_differences(a, b, f"{key}.{name}")
        elif a != b:
            differ.append(f"{key}.{name}: checkpoint {a!r}, config {b!r}")
    return differ


def plain(value):
    """Settings as plain data: dataclasses as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def load_backbone(path: str | Path, prefer_ema: bool = True, attention_backend: AttentionBackend = "auto",
                  flag: str = "init_from") -> CausalVideoDiT:
    """The backbone stored in a checkpoint (`read_checkpoint`: a stage or plain backbone checkpoint, a file or a
    sharded folder), with its EMA weights when present (docs/architecture.md §5) and LoRA adapters merged, or a Wan
    transformer (`backbone.wan.load_wan`: a diffusers or Wan folder, a .safetensors/.pth file), running attention
    with `attention_backend`; errors name `flag`."""
    if is_wan_checkpoint(path):
        return load_wan(path, attention_backend=attention_backend)
    return backbone_from_checkpoint(read_checkpoint(path, flag), f"{flag}={path}", prefer_ema, attention_backend)


def load_discriminator(path: str | Path, attention_backend: AttentionBackend = "auto", flag: str = "--ckpt"):
    """The discriminator (`CausalDiscriminator`) a stage-3 checkpoint stores, with its recorded backbone and heads;
    errors name `flag`."""
    from lightning_aapt.adversarial import CausalDiscriminator

    checkpoint = read_checkpoint(path, flag)
    where = f"{flag}={path}"
    if "discriminator_config" not in checkpoint:
        raise CheckpointError(f"{where}: not a stage-3 checkpoint (it records no discriminator); give the "
                              "AdversarialPostTraining checkpoint")
    heads = (checkpoint.get("hyper_parameters") or {}).get("disc_head_layers")
    model = CausalDiscriminator(CausalVideoDiT(recorded_backbone(checkpoint["discriminator_config"], where),
                                               attention_backend), tuple(heads) if heads else None)
    state = {k.removeprefix("discriminator."): v for k, v in checkpoint["state_dict"].items()
             if k.startswith("discriminator.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{where}: the discriminator's weights do not match its recorded config: {err}") from err
    return model


def recorded_settings(path: str | Path, flag: str = "--ckpt") -> dict:
    """The stage settings (`hyper_parameters`) a checkpoint file or sharded folder records; {} for a Wan path or a
    plain backbone checkpoint (`merge`)."""
    if is_wan_checkpoint(path):
        return {}
    return dict(read_checkpoint(path, flag, weights=False).get("hyper_parameters") or {})


def check_latent_size(path: str | Path, size: tuple[int, int], data: str | Path, flag: str = "--ckpt") -> None:
    """Refuse to stream a checkpoint on latents of another size than it was trained on (a world of another
    resolution), when it records the size (checkpoints written since it was recorded)."""
    if is_wan_checkpoint(path):
        return
    recorded = read_checkpoint(path, flag, weights=False).get("latent_size")
    if recorded is not None and tuple(recorded) != tuple(size):
        raise CheckpointError(f"{flag}={path} was trained on {recorded[0]}x{recorded[1]} latents; --data {data} "
                              f"holds {size[0]}x{size[1]} (a world of another resolution): give the dataset it was "
                              "trained on")


def save_backbone(model: CausalVideoDiT, path: str | Path, **extra) -> None:
    """Write `model` as a plain backbone checkpoint (`backbone_config` and its weights under `model.`, no optimizer
    state), atomically: what `load_backbone` and `init_from` read; `extra` entries are stored beside them."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"backbone_config": dataclasses.asdict(model.cfg), "state_dict": state, **extra}, tmp)


# Run settings that checkpoints written before they left `BackboneConfig` still record with the architecture.
FORMER_RUN_SETTINGS = ("attention_backend", "max_cache_frames")


def recorded_backbone(saved: dict, where: str = "the checkpoint") -> BackboneConfig:
    """The architecture a checkpoint's `backbone_config` records; one this version cannot build is refused, naming
    `where`."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where}: backbone_config must record the backbone's fields, got "
                              f"{type(saved).__name__}")
    known = {f.name for f in dataclasses.fields(BackboneConfig)}
    fields = {k: v for k, v in saved.items() if k not in FORMER_RUN_SETTINGS}
    if unknown := sorted(set(fields) - known):
        raise CheckpointError(f"{where}: backbone_config records fields this version does not know ({unknown}): "
                              "written by a newer lightning_aapt? Upgrade to read it")
    try:
        return BackboneConfig(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: backbone_config does not describe a backbone: {err}") from None


def backbone_from_checkpoint(checkpoint: dict, where: str, prefer_ema: bool = True,
                             attention_backend: AttentionBackend = "auto") -> CausalVideoDiT:
    """The backbone of a checkpoint `read_checkpoint` returned (EMA weights when present, LoRA merged)."""
    model = CausalVideoDiT(recorded_backbone(checkpoint["backbone_config"], where), attention_backend)
    state = checkpoint["state_dict"]
    prefix = "ema." if prefer_ema and any(k.startswith("ema.") for k in state) else "model."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if broken := [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]:
        raise CheckpointError(f"{where}: weights hold NaN or infinite values ({prefix}{broken[0]}"
                              f"{f' and {len(broken) - 1} more' if len(broken) > 1 else ''}): the run diverged before "
                              "it wrote them; use an earlier checkpoint")
    if checkpoint.get("lora") is not None:  # a LoRA stage: adapters folded into the base weights
        try:
            lora = LoraConfig(**checkpoint["lora"])
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: its `lora` settings cannot be read ({err})") from None
        weights = merged_state(weights, lora)
    elif is_lora_state(weights):
        raise CheckpointError(f"{where}: the weights hold LoRA adapters but the checkpoint records no `lora` "
                              "settings to merge them with")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{where}: weights under '{prefix}' do not match the recorded backbone: {err}") from err
    return model


def init_backbone_from(model: CausalVideoDiT, path: str | Path) -> None:
    """Load a checkpoint's backbone into `model` strictly, new zero-initialised input groups aside.

    The checkpoint may hold the bidirectional form (stage 0, or a pretrained Wan transformer) and `model` the causal
    one: recycled-frame (and new control) projections keep their zero initialisation, everything else must match
    exactly or this raises, naming the mismatch.
    """
    source = load_backbone(path)
    load_converted(model, source.state_dict(), f"init_from={path}")
