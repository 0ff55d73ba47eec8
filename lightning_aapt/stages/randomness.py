"""Randomness of a training step: independent streams, one generator per sample seeded by (run seed, step, stream,
global sample index), so N ranks of batch B draw exactly what 1 rank of batch N*B draws and a resumed run draws
what the uninterrupted one did, without restoring any RNG state; and the training timestep distribution."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch


class RandomStream(enum.IntEnum):
    """Independent random streams of a training step (see `StageModule.sample_generators`)."""

    NOISE = 0
    TIMESTEPS = 1
    ROLLOUT = 2
    D_TIMESTEPS = 3
    D_NOISE = 4
    G_TIMESTEPS = 5
    G_NOISE = 6
    R1 = 7
    R2 = 8
    CONTEXT_LEVEL = 9
    CONTEXT_NOISE = 10
    NEGATIVES = 11
    NEGATIVE_REGION = 12


def sample_generators(seed: int, step: int, stream: int, first: int, batch: int,
                      device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per sample of global places first .. first + batch - 1, for `stream` at `step`."""
    states = np.random.SeedSequence([seed, step, stream]).spawn(first + batch)[first:]
    return [torch.Generator(device=device).manual_seed(int(s.generate_state(1, np.uint64)[0] >> 1)) for s in states]


@dataclass(frozen=True)
class TimestepConfig:
    """How training draws per-frame timesteps (docs/architecture.md §4).

    Args:
        per: "clip" (one t for all frames of a clip: AAPT) or "frame" (independent per frame).
        distribution: "uniform" (AAPT) or "logit_normal".
        shift: time shift s applied on [0, 1] (AAPT: 24 for its large latents; small for the toy).
    """

    per: Literal["clip", "frame"] = "clip"
    distribution: Literal["uniform", "logit_normal"] = "uniform"
    shift: float = 1.0
