"""Moving averages of weights: the EMA a stage samples with, and stage 2's consistency target."""

from __future__ import annotations

import torch


@torch.no_grad()
def move_average(averaged: torch.nn.Module, trained: torch.nn.Module, weight: float) -> None:
    """averaged <- averaged + weight * (trained - averaged), parameter by parameter (shard by shard when sharded).
    `torch._foreach_lerp_` is the fused form torch's own optimizers use; there is no public one as fast."""
    torch._foreach_lerp_(list(averaged.parameters()), list(trained.parameters()), weight)
