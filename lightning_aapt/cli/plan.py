"""`python -m lightning_aapt plan`: parameters, FLOPs and memory per GPU of a config, before launching."""

from __future__ import annotations

import argparse

from lightning_aapt.backbone import PRESETS, BackboneConfig


def main(argv: list[str]) -> int:
    """Parameters, FLOPs and memory per GPU of a config (or of a preset and flags), before spending GPU hours."""
    from omegaconf import OmegaConf

    from lightning_aapt.plan import Workload, report

    parser = argparse.ArgumentParser(prog="python -m lightning_aapt plan", description=main.__doc__)
    parser.add_argument("--config", help="an experiment YAML: backbone, GPUs, strategy, batch and clip length")
    parser.add_argument("--preset", default="aapt-8b-like", choices=sorted(PRESETS),
                        help="backbone fields the config does not set (latent/text widths come from the data)")
    parser.add_argument("--gpus", type=int, help="data-parallel GPUs (default: the config's devices x num_nodes)")
    parser.add_argument("--batch", type=int, help="clips per GPU (default: the config's data.batch_size)")
    parser.add_argument("--frames", type=int, help="latent frames per clip (default: the config's num_frames)")
    parser.add_argument("--latent-size", type=int, nargs=2, default=(52, 92), metavar=("H", "W"),
                        help="latent frame size (default 52 x 92: 416 x 736 video through an 8x VAE)")
    parser.add_argument("--text-tokens", type=int, default=512)
    parser.add_argument("--sharding", choices=["fsdp", "ddp"])
    parser.add_argument("--precision", choices=["bf16", "fp32"])
    parser.add_argument("--no-activation-checkpointing", action="store_true")
    parser.add_argument("--stage", type=int, choices=[1, 3])
    parser.add_argument("--gpu-memory-gib", type=float, default=80.0)
    args = parser.parse_args(argv)
    spec = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True) if args.config else {}
    trainer, model = spec.get("trainer", {}), spec.get("model", {})
    init, data = model.get("init_args", {}), spec.get("data", {}).get("init_args", {})
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in (init.get("backbone") or {}).items()}
    unknown = set(fields) - set(BackboneConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{args.config}: model.init_args.backbone has unknown keys {sorted(unknown)}")
    cfg = BackboneConfig.preset(args.preset, **fields)
    strategy = trainer.get("strategy", "ddp")
    strategy_name = strategy.get("class_path", "") if isinstance(strategy, dict) else str(strategy)
    parallel = init.get("parallel") or {}
    work = Workload(
        latent_size=tuple(args.latent_size), text_tokens=args.text_tokens,
        frames=args.frames or data.get("num_frames", 30), batch_per_gpu=args.batch or data.get("batch_size", 1),
        gpus=args.gpus or int(trainer.get("devices", 8)) * int(trainer.get("num_nodes", 1)),
        sharding=args.sharding or ("fsdp" if "ModelParallel" in strategy_name else "ddp" if args.config else "fsdp"),
        precision=args.precision or parallel.get("precision", "bf16"),
        activation_checkpointing=not args.no_activation_checkpointing and parallel.get("activation_checkpointing",
                                                                                      True),
        stage=args.stage or (3 if "Adversarial" in model.get("class_path", "") else 1),
        rollout_frames=init.get("num_rollout_frames"))
    print(report(args.config or args.preset, cfg, work, args.gpu_memory_gib))
    return 0
