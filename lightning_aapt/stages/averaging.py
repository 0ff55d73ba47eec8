"""Moving averages of weights: the EMA a stage samples with, and stage 2's consistency target."""

from __future__ import annotations

import copy

import torch


def averaged_copy(trained: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of `trained` to average into: its trained parameters copied, its frozen ones (a LoRA base)
    shared, since they never move."""
    frozen = {id(p): p for p in trained.parameters() if not p.requires_grad}
    return copy.deepcopy(trained, memo=frozen).requires_grad_(False)


@torch.no_grad()
def move_average(averaged: torch.nn.Module, trained: torch.nn.Module, weight: float) -> None:
    """averaged <- averaged + weight * (trained - averaged), for each trained parameter (shard by shard when sharded;
    frozen ones never move). `torch._foreach_lerp_` is the fused form torch's own optimizers use; there is no public
    one as fast."""
    pairs = [(a, t) for a, t in zip(averaged.parameters(), trained.parameters(), strict=True) if t.requires_grad]
    torch._foreach_lerp_([a for a, _ in pairs], [t for _, t in pairs], weight)
