"""Networks out of checkpoints and into them: a stage's backbone (EMA weights when present, LoRA adapters merged)
or a Wan transformer; the generator with the way it samples (`load_generator`, what `play`, `sample`, `eval` and
`merge` stream with); a stage-3 discriminator; plain backbone checkpoints (`save_generator`). Torch only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from lightning_aapt.backbone import AttentionBackend, CausalVideoDiT
from lightning_aapt.backbone.lora import LoraConfig, is_lora_state, merged_state
from lightning_aapt.backbone.model import load_converted
from lightning_aapt.checkpoints.reading import read_checkpoint, stage_of
from lightning_aapt.checkpoints.settings import Sampling, recorded_backbone, recorded_sampling
from lightning_aapt.checkpoints.wan import is_wan_checkpoint, load_wan
from lightning_aapt.data import ClipShapes
from lightning_aapt.errors import CheckpointError
from lightning_aapt.files import atomic_path


def load_backbone(path: str | Path, prefer_ema: bool = True, attention_backend: AttentionBackend = "auto",
                  flag: str = "init_from") -> CausalVideoDiT:
    """The backbone stored in a checkpoint (`read_checkpoint`: a stage or plain backbone checkpoint, a file or a
    sharded folder), with its EMA weights when present (docs/architecture.md §5) and LoRA adapters merged, or a Wan
    transformer (`checkpoints.wan.load_wan`: a diffusers or Wan folder, a .safetensors/.pth file), running attention
    with `attention_backend`; errors name `flag`."""
    if is_wan_checkpoint(path):
        return load_wan(path, attention_backend=attention_backend)
    return backbone_from_checkpoint(read_checkpoint(path, flag), f"{flag}={path}", prefer_ema, attention_backend)


def weights_prefix(state: dict, prefer_ema: bool) -> str:
    """Where a checkpoint's sampling weights sit in its state dict: "ema." when it has an EMA (and it is preferred)."""
    return "ema." if prefer_ema and any(k.startswith("ema.") for k in state) else "model."


def backbone_from_checkpoint(checkpoint: dict, where: str, prefer_ema: bool = True,
                             attention_backend: AttentionBackend = "auto") -> CausalVideoDiT:
    """The backbone of a checkpoint `read_checkpoint` returned (EMA weights when present, LoRA merged)."""
    model = CausalVideoDiT(recorded_backbone(checkpoint["backbone_config"], where), attention_backend)
    state = checkpoint["state_dict"]
    prefix = weights_prefix(state, prefer_ema)
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


@dataclass
class Generator:
    """A checkpoint's generator, ready to stream: its backbone (`weights`: the EMA or the trained weights, LoRA
    merged), how it samples, and what the checkpoint says about where it came from."""

    model: CausalVideoDiT
    sampling: Sampling
    weights: Literal["ema", "trained"]
    where: str  # "--ckpt=PATH", for errors
    stage: str | None = None  # the stage class that wrote it (None: a plain backbone checkpoint, a Wan transformer)
    global_step: int | None = None
    latent_size: tuple[int, int] | None = None  # (height, width) of the latents it was trained on, when recorded

    def check_streams(self, command: str) -> None:
        """Refuse a bidirectional (stage-0) model where `command` streams frame by frame."""
        if self.model.cfg.bidirectional:
            raise CheckpointError(f"{self.where}: a bidirectional (stage-0) model cannot stream; {command} stages 1-3")

    def check_data(self, shapes: ClipShapes, data: str) -> None:
        """Refuse data (`shapes`, named `data`) the generator was not trained on: latents of another size (a world of
        another resolution), or other latent channels, text or control widths."""
        if self.latent_size is not None and tuple(self.latent_size) != (shapes.height, shapes.width):
            h, w = self.latent_size
            raise CheckpointError(f"{self.where} was trained on {h}x{w} latents; {data} holds {shapes.height}x"
                                  f"{shapes.width} (a world of another resolution): give the dataset it was trained on")
        cfg = self.model.cfg
        differ = [f"{k}: checkpoint {getattr(cfg, k)}, data {v}" for k, v in shapes.model_dims.items()
                  if getattr(cfg, k) != v]
        if differ:
            raise CheckpointError(f"{self.where} does not fit {data} ({'; '.join(differ)}): give the dataset it was "
                                  "trained on")


def load_generator(path: str | Path, flag: str = "--ckpt", prefer_ema: bool = True,
                   attention_backend: AttentionBackend = "auto") -> Generator:
    """The generator a stage checkpoint, a plain backbone checkpoint (`merge`) or a Wan transformer holds, read once;
    errors name `flag`."""
    where = f"{flag}={path}"
    if is_wan_checkpoint(path):
        return Generator(load_wan(path, attention_backend=attention_backend), Sampling(), "trained", where)
    checkpoint = read_checkpoint(path, flag)
    model = backbone_from_checkpoint(checkpoint, where, prefer_ema, attention_backend)
    ema = weights_prefix(checkpoint["state_dict"], prefer_ema) == "ema."
    size = checkpoint.get("latent_size")
    return Generator(model, recorded_sampling(checkpoint, where), "ema" if ema or checkpoint.get("weights") == "ema"
                     else "trained", where, stage_of(checkpoint), checkpoint.get("global_step"),
                     tuple(size) if size is not None else None)


def save_generator(generator: Generator, path: str | Path, **extra) -> None:
    """`save_backbone` of a generator, with how it samples, which weights they are, its step and the latent size it
    was trained on: `load_generator` of the file gives the same generator."""
    size = list(generator.latent_size) if generator.latent_size is not None else None
    save_backbone(generator.model, path, sampling=dataclasses.asdict(generator.sampling), weights=generator.weights,
                  latent_size=size, global_step=generator.global_step, **extra)


def save_backbone(model: CausalVideoDiT, path: str | Path, **extra) -> None:
    """Write `model` as a plain backbone checkpoint (`backbone_config` and its weights under `model.`, no optimizer
    state), atomically: what `load_backbone` and `init_from` read; `extra` entries are stored beside them."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"backbone_config": dataclasses.asdict(model.cfg), "state_dict": state, **extra}, tmp)


def load_discriminator(path: str | Path, attention_backend: AttentionBackend = "auto", flag: str = "--ckpt"):
    """The discriminator (`CausalDiscriminator`) a stage-3 checkpoint stores, with its recorded backbone and heads;
    errors name `flag`."""
    from lightning_aapt.adversarial import CausalDiscriminator

    checkpoint = read_checkpoint(path, flag)
    where = f"{flag}={path}"
    if "discriminator_config" not in checkpoint:
        raise CheckpointError(f"{where}: not a stage-3 checkpoint (it records no discriminator); give the "
                              "AdversarialPostTraining checkpoint")
    # the heads it was built with; checkpoints before they were recorded hold the setting in its hyper-parameters
    heads = checkpoint.get("discriminator_heads") or (checkpoint.get("hyper_parameters") or {}).get("disc_head_layers")
    model = CausalDiscriminator(CausalVideoDiT(recorded_backbone(checkpoint["discriminator_config"], where),
                                               attention_backend), tuple(heads) if heads else None)
    state = {k.removeprefix("discriminator."): v for k, v in checkpoint["state_dict"].items()
             if k.startswith("discriminator.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{where}: the discriminator's weights do not match its recorded config: {err}") from err
    return model
