"""`python -m lightning_aapt plan`: parameters, FLOPs and memory per GPU of a config, before launching."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lightning_aapt.backbone import PRESETS, BackboneConfig
from lightning_aapt.cli.lightning import read_stage_config
from lightning_aapt.cli.signature import run_function
from lightning_aapt.errors import ConfigError, check_at_least


def plan(config: Path | None = None, preset: str = "aapt-8b-like", gpus: int | None = None, batch: int | None = None,
         frames: int | None = None, latent_size: tuple[int, int] = (52, 92), text_tokens: int = 512,
         sharding: Literal["fsdp", "ddp"] | None = None, precision: Literal["bf16", "fp32"] | None = None,
         activation_checkpointing: bool | None = None, stage: Literal[1, 2, 3] | None = None,
         gpu_memory_gib: float = 80.0) -> int:
    """Parameters, FLOPs and memory per GPU of a config (or of a preset and flags), before spending GPU hours.

    Args:
        config: an experiment YAML: backbone, GPUs, strategy, batch and clip length.
        preset: the backbone without --config; with one, the latent, text and control widths when the config's
            data_dir holds no dataset yet (the other fields the config leaves out take fit's defaults).
        gpus: data-parallel GPUs (default: the config's devices x num_nodes).
        batch: clips per GPU (default: the config's data.batch_size).
        frames: latent frames per clip (default: the config's num_frames).
        latent_size: latent frame size [H,W] (default 52 x 92: 416 x 736 video through an 8x VAE).
        text_tokens: text tokens per clip.
        sharding: fsdp or ddp (default: the config's strategy).
        precision: bf16 or fp32 (default: the config's).
        activation_checkpointing: default: the config's (on when it says nothing).
        stage: 1 (one pass per step), 2 (teacher, target and student passes) or 3 (rollout, D and G; default:
            from the config's model class). LoRA (`model.init_args.lora`) and frozen teachers come from the config.
        gpu_memory_gib: memory of one GPU.
    """
    from lightning_aapt.backbone.lora import LoraConfig
    from lightning_aapt.plan import Workload, report

    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: choose one of {sorted(PRESETS)}")
    own = " (leave it out for the config's own)"
    check_at_least(("--gpus", gpus, 1), ("--batch", batch, 1), ("--frames", frames, 1),
                   ("--text_tokens", text_tokens, 1), why=dict.fromkeys(("--gpus", "--batch", "--frames",
                                                                          "--text_tokens"), own))
    if len(latent_size) != 2 or min(latent_size) < 1:
        raise ConfigError(f"--latent_size {list(latent_size)}: must be [H,W], each >= 1 (latent frame size)")
    cfg, trainer, init, data = BackboneConfig.preset(preset), {}, {}, {}
    if config is not None:  # the model fit would build: the config's settings (parsed as fit parses them, every
        # default filled in), the data's widths (fit links them from the dataset; the preset's without one yet)
        spec = read_stage_config(config).as_dict()
        trainer, model = spec.get("trainer") or {}, spec["model"]
        init, data = model["init_args"], (spec.get("data") or {}).get("init_args") or {}
        widths = data_widths(data.get("data_dir")) or {k: getattr(cfg, k) for k in WIDTHS}
        cfg = BackboneConfig(**{**{k: tuple(v) if isinstance(v, list) else v for k, v in init["backbone"].items()},
                                **widths})
        stage = stage or stage_of(model["class_path"])
    strategy = trainer.get("strategy", "ddp")
    strategy_name = strategy.get("class_path", "") if isinstance(strategy, dict) else str(strategy)
    parallel = init.get("parallel") or {}
    stage = stage or 1
    work = Workload(
        latent_size=tuple(latent_size), text_tokens=text_tokens,
        frames=frames or data.get("num_frames", 30), batch_per_gpu=batch or data.get("batch_size", 1),
        gpus=gpus or int(trainer.get("devices", 8)) * int(trainer.get("num_nodes", 1)),
        sharding=sharding or ("fsdp" if "ModelParallel" in strategy_name else "ddp" if config else "fsdp"),
        precision=precision or parallel.get("precision", "bf16"),
        activation_checkpointing=(activation_checkpointing if activation_checkpointing is not None
                                  else parallel.get("activation_checkpointing", True)),
        stage=stage, rollout_frames=(init.get("rollout") or {}).get("frames"),
        segment_frames=(init.get("rollout") or {}).get("segment_frames"),
        frozen_networks=frozen_networks(stage, init),
        lora=LoraConfig(**init["lora"]) if init.get("lora") else None)
    print(report(str(config) if config else preset, cfg, work, gpu_memory_gib))
    return 0


WIDTHS = ("latent_channels", "text_dim", "control_dim")  # what `fit` links from the data into the backbone


def data_widths(data_dir: str | None) -> dict:
    """The backbone widths a dataset decides (as `fit` links them), when `data_dir` holds one; {} otherwise."""
    from lightning_aapt.data import MANIFEST, read_manifest

    if data_dir is None or not (Path(data_dir) / MANIFEST).is_file():
        return {}
    return read_manifest(data_dir).shapes.model_dims


def stage_of(class_path: str) -> int:
    return 3 if "Adversarial" in class_path else 2 if "Consistency" in class_path else 1


def frozen_networks(stage: int, init: dict) -> int:
    """Frozen backbones a stage holds beside the trained ones: stage 2's teacher (and EMA target), stage 3's
    distillation teacher (`regression.distill_weight`)."""
    if stage == 2:
        return 1 + (init.get("target_ema_decay", 0.0) > 0)
    return int(stage == 3 and (init.get("regression") or {}).get("distill_weight", 0.0) > 0)


def main(argv: list[str]) -> int:
    return run_function(plan, argv, "plan")
