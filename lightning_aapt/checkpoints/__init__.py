"""Checkpoints without Lightning: reading them (a file or a sharded folder), what they record, the networks in them
(a stage's backbone or a Wan transformer, LoRA merged; the generator with the way it samples; a discriminator), and
plain backbone checkpoints. `play`, `sample`, `merge` and `eval` load through here; `stages/` writes the checkpoints
(its CheckpointIO plugin reads them back through `read_checkpoint`)."""

from lightning_aapt.checkpoints.backbones import (
    Generator,
    backbone_from_checkpoint,
    init_backbone_from,
    load_backbone,
    load_discriminator,
    load_generator,
    save_backbone,
    save_generator,
)
from lightning_aapt.checkpoints.reading import LIGHTNING_CKPT_NAMES, brief, read_checkpoint, stage_of
from lightning_aapt.checkpoints.settings import (
    Sampling,
    check_backbone,
    check_stage,
    recorded_backbone,
    recorded_sampling,
    settings_differences,
)

__all__ = ["LIGHTNING_CKPT_NAMES", "Generator", "Sampling", "backbone_from_checkpoint", "brief", "check_backbone",
           "check_stage", "init_backbone_from", "load_backbone", "load_discriminator", "load_generator",
           "read_checkpoint", "recorded_backbone", "recorded_sampling", "save_backbone", "save_generator",
           "settings_differences", "stage_of"]
