"""The stages' optimizers: AdamW with decoupled weight decay on weight matrices only, and the learning-rate
schedule (linear warm-up, constant, optional linear cool-down to `trainer.max_steps`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lightning_aapt.errors import ConfigError


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with linear warm-up to `lr`, then constant, then (optionally) a linear cool-down to 0 that ends at
    `trainer.max_steps` (warm-up, stable, decay: a run's length can change without retuning its decay).

    Args:
        lr: learning rate after warm-up.
        betas: Adam betas.
        weight_decay: decoupled weight decay (AAPT stage 1: 0.01).
        warmup_steps: optimizer steps of linear warm-up from 0.
        cooldown_steps: the last optimizer steps before `trainer.max_steps`, over which the rate falls linearly to
            0 (0: none, constant to the end).
    """

    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    cooldown_steps: int = 0

    def check(self, key: str) -> None:
        """Refuse, by `key` (where the config holds these settings), values AdamW cannot train with."""
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"{key}.lr must be a finite number > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"{key}.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"{key}.weight_decay must be a finite number >= 0, got {self.weight_decay}")
        for name in ("warmup_steps", "cooldown_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key}.{name} must be >= 0, got {getattr(self, name)}")


def adamw(named_parameters, cfg: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW of the trainable parameters with `cfg`'s decoupled weight decay on weight matrices only (biases, norms
    and the timestep modulation are not decayed)."""
    decay, no_decay = [], []
    for name, p in named_parameters:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "modulation" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)


def warmup_factor(step: int, cfg: OptimizerConfig) -> float:
    """Linear warm-up: the fraction of `lr` at optimizer step `step` (1 from step `warmup_steps - 1` on)."""
    return min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


def lr_factor(step: int, cfg: OptimizerConfig, max_steps: int | None) -> float:
    """The learning rate at optimizer step `step`, as a fraction of `lr`: warm-up, constant, cool-down (ending at
    `max_steps`; needed only with `cooldown_steps` > 0)."""
    factor = warmup_factor(step, cfg)
    if cfg.cooldown_steps > 0:
        factor *= min(1.0, max(0.0, (max_steps - step) / cfg.cooldown_steps))
    return factor
