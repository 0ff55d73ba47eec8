"""`python -m lightning_aapt plan`: parameters, FLOPs and memory per GPU of a config, before launching."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lightning_aapt.backbone import PRESETS, BackboneConfig
from lightning_aapt.cli.signature import run_function


def plan(config: Path | None = None, preset: str = "aapt-8b-like", gpus: int | None = None, batch: int | None = None,
         frames: int | None = None, latent_size: tuple[int, int] = (52, 92), text_tokens: int = 512,
         sharding: Literal["fsdp", "ddp"] | None = None, precision: Literal["bf16", "fp32"] | None = None,
         activation_checkpointing: bool | None = None, stage: Literal[1, 2, 3] | None = None,
         gpu_memory_gib: float = 80.0) -> int:
    """Parameters, FLOPs and memory per GPU of a config (or of a preset and flags), before spending GPU hours.

    Args:
        config: an experiment YAML: backbone, GPUs, strategy, batch and clip length.
        preset: backbone fields the config does not set (latent/text widths come from the data).
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
    from omegaconf import OmegaConf

    from lightning_aapt.plan import Workload, report
    from lightning_aapt.stages.lora import LoraConfig

    if preset not in PRESETS:
        raise SystemExit(f"--preset {preset!r}: choose one of {sorted(PRESETS)}")
    spec = OmegaConf.to_container(OmegaConf.load(config), resolve=True) if config else {}
    trainer, model = spec.get("trainer", {}), spec.get("model", {})
    init, data = model.get("init_args", {}), spec.get("data", {}).get("init_args", {})
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in (init.get("backbone") or {}).items()}
    unknown = set(fields) - set(BackboneConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{config}: model.init_args.backbone has unknown keys {sorted(unknown)}")
    cfg = BackboneConfig.preset(preset, **fields)
    strategy = trainer.get("strategy", "ddp")
    strategy_name = strategy.get("class_path", "") if isinstance(strategy, dict) else str(strategy)
    parallel = init.get("parallel") or {}
    stage = stage or stage_of(model.get("class_path", ""))
    work = Workload(
        latent_size=tuple(latent_size), text_tokens=text_tokens,
        frames=frames or data.get("num_frames", 30), batch_per_gpu=batch or data.get("batch_size", 1),
        gpus=gpus or int(trainer.get("devices", 8)) * int(trainer.get("num_nodes", 1)),
        sharding=sharding or ("fsdp" if "ModelParallel" in strategy_name else "ddp" if config else "fsdp"),
        precision=precision or parallel.get("precision", "bf16"),
        activation_checkpointing=(activation_checkpointing if activation_checkpointing is not None
                                  else parallel.get("activation_checkpointing", True)),
        stage=stage, rollout_frames=init.get("num_rollout_frames"), frozen_networks=frozen_networks(stage, init),
        lora=LoraConfig(**init["lora"]) if init.get("lora") else None)
    print(report(str(config) if config else preset, cfg, work, gpu_memory_gib))
    return 0


def stage_of(class_path: str) -> int:
    return 3 if "Adversarial" in class_path else 2 if "Consistency" in class_path else 1


def frozen_networks(stage: int, init: dict) -> int:
    """Frozen backbones a stage holds beside the trained ones: stage 2's teacher (and EMA target), stage 3's
    distillation teacher."""
    if stage == 2:
        return 1 + (init.get("target_ema_decay", 0.0) > 0)
    return int(stage == 3 and init.get("distill_weight", 0.0) > 0)


def main(argv: list[str]) -> int:
    return run_function(plan, argv, "plan")
