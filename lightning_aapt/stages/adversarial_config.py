"""Stage 3's settings, grouped by what they shape: the rollout that makes the fake videos (`RolloutConfig`), the
discriminator and how it trains (`DiscriminatorConfig`), its gradient penalties (`PenaltyConfig`), and the optional
regressions of the generator's rollouts (`RegressionConfig`). Each refuses, by its key under `model.init_args`, a
value the stage cannot train with, when it is built (as the config is parsed)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from lightning_aapt.errors import ConfigError
from lightning_aapt.stages.optim import OptimizerConfig

KEY = "model.init_args"

# AdamW as AAPT/APT train both networks: beta1 = 0, beta2 = 0.9, no weight decay, no warm-up.
ADAM_GAN = OptimizerConfig(lr=3e-6, betas=(0.0, 0.9), weight_decay=0.0, warmup_steps=0)


def refuse_unless(ok: bool, key: str, expected: str, value) -> None:
    if not ok:
        raise ConfigError(f"{KEY}.{key} must be {expected}, got {value!r}")


@dataclass(frozen=True)
class RolloutConfig:
    """The fake videos: how the generator continues each real clip (AAPT §2.2 (3), student forcing).

    Args:
        frames: R, frames of the fake video, its real context included (None: the clip length, `data.num_frames`);
            longer than a segment = long-video training, judged segment by segment.
        context_frames: K, the clip's real frames the generator continues from (AAPT: 1, the first frame): frames
            1..K-1 enter through the cache as at inference, are never generated and take no loss. With K >= 2 the
            motion of the scene is in the context, so the real continuation is determined by it.
        segment_frames: S, frames the discriminator judges at once and the generator back-propagates at once
            (None: the clip length). Clips longer than a segment pair every segment inside them with the same
            clip's real frames at the same place.
        segment_overlap: frames shared by consecutive segments (AAPT: 1 s).
        forcing: "student" (AAPT): the generator rolls out on its own frames, as at inference; "teacher" (the
            variant AAPT App. D compares with): each frame is made from the real frames before it, in one pass.
        kv_gradients: gradients reach earlier frames' passes through their keys/values (AAPT); False: each frame's
            gradient comes from its own pass only. Recycled input frames are always detached.
    """

    frames: int | None = None
    context_frames: int = 1
    segment_frames: int | None = None
    segment_overlap: int = 1
    forcing: Literal["student", "teacher"] = "student"
    kv_gradients: bool = True

    def __post_init__(self) -> None:
        refuse_unless(self.frames is None or self.frames >= 2, "rollout.frames",
                      ">= 2 (a generated frame after the first) or null (the clip length)", self.frames)
        refuse_unless(self.context_frames >= 1, "rollout.context_frames", ">= 1 (the first frame)",
                      self.context_frames)
        refuse_unless(self.segment_frames is None or self.segment_frames >= 2, "rollout.segment_frames",
                      ">= 2 (a generated frame after the first) or null (the clip length)", self.segment_frames)
        refuse_unless(self.segment_overlap >= 0 and (self.segment_frames is None or
                                                     self.segment_overlap < self.segment_frames),
                      "rollout.segment_overlap", ">= 0 and below rollout.segment_frames", self.segment_overlap)
        refuse_unless(self.forcing in ("student", "teacher"), "rollout.forcing", "'student' or 'teacher'",
                      self.forcing)
        if self.forcing == "teacher" and self.frames is not None:
            raise ConfigError(f"{KEY}.rollout.forcing='teacher' generates each clip from its own real frames: it has "
                              f"no rollout longer than the clip, so leave {KEY}.rollout.frames unset (null)")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The per-frame causal discriminator (AAPT App. B) and how it trains.

    Args:
        init_from: checkpoint initialising its backbone (AAPT: stage 1; None: a random backbone like the generator's).
        head_layers: blocks feeding its per-frame query heads (None: the middle and the last).
        optimizer: its AdamW settings (warm-up over its own updates; no cool-down).
        updates_per_g: discriminator updates per generator update.
        updates_before_g: discriminator updates before the generator's first one: a freshly headed D is
            uninformative, and a generator trained against it only drifts (Self-Forcing warms its critic up too).
        timestep_shift: time shift of its t ~ U(0, 1), which noises the frames it judges, for its update and the
            generator's alike (AAPT: 1, unshifted; APT: 12 for large video latents). Below 1 it favours low noise:
            small latents hold little redundant signal, and at high t they show D nothing.
        negative_weight: weight of negative clips in its loss (0: AAPT, none): each real segment is also shown with
            one of its detailed `negative_size` x `negative_size` latent windows (drawn in proportion to its detail)
            faded into its surroundings from a random frame on (`adversarial/negatives.py`), paired against the real
            segment by the same relativistic loss, so it learns that an object vanishing is fake instead of whatever
            cue the generator's frames offer (negative data augmentation).
        negative_size: the faded window's edge in latent pixels.
    """

    init_from: str | None = None
    head_layers: tuple[int, ...] | None = None
    optimizer: OptimizerConfig = field(default_factory=lambda: ADAM_GAN)
    updates_per_g: int = 1
    updates_before_g: int = 0
    timestep_shift: float = 1.0
    negative_weight: float = 0.0
    negative_size: int = 2

    def __post_init__(self) -> None:
        self.optimizer.check(f"{KEY}.discriminator.optimizer")
        refuse_unless(self.updates_per_g >= 1, "discriminator.updates_per_g", ">= 1", self.updates_per_g)
        refuse_unless(self.updates_before_g >= 0, "discriminator.updates_before_g", ">= 0", self.updates_before_g)
        refuse_unless(math.isfinite(self.timestep_shift) and self.timestep_shift > 0, "discriminator.timestep_shift",
                      "a finite number > 0", self.timestep_shift)
        refuse_unless(self.negative_weight >= 0, "discriminator.negative_weight", ">= 0", self.negative_weight)
        refuse_unless(self.negative_size >= 1, "discriminator.negative_size", ">= 1", self.negative_size)


@dataclass(frozen=True)
class PenaltyConfig:
    """The discriminator's approximated gradient penalties (AAPT App. B, after APT): each is the squared change of
    its logits under a small perturbation of its input, R1 on real frames and R2 on fake ones.

    Args:
        r1_gamma, r2_gamma: weights of R1 (real) and R2 (fake) (AAPT: 1000).
        sigma: the perturbation's standard deviation (AAPT: 0.1).
    """

    r1_gamma: float = 1000.0
    r2_gamma: float = 1000.0
    sigma: float = 0.1

    def __post_init__(self) -> None:
        for name in ("r1_gamma", "r2_gamma"):
            value = getattr(self, name)
            refuse_unless(math.isfinite(value) and value >= 0, f"penalty.{name}", "a finite number >= 0", value)
        refuse_unless(math.isfinite(self.sigma) and self.sigma > 0, "penalty.sigma", "a finite number > 0", self.sigma)


@dataclass(frozen=True)
class RegressionConfig:
    """Regressions of the generator's own rollouts, beside the adversarial loss (not in AAPT, whose stage 3 is
    adversarial only; both 0 by default). Each is a per-frame latent MSE over the generated frames, averaged like the
    adversarial loss.

    Args:
        distill_weight: onto the frozen teacher's `teacher_steps`-step sample of each generated frame from the same
            noise, teacher-forced on the generator's own earlier frames: what the teacher would make next from where
            the rollout actually is. The teacher is `discriminator.init_from` (stage 1), sampled on the stage's
            timestep shift. It anchors the generator where the discriminator's signal is weak and teaches it to
            continue from its own drifted frames (exposure bias), as Self-Forcing's distribution matching does.
        teacher_steps: the teacher's Euler steps per frame.
        truth_weight: onto the real clip, for the generated frames inside it (video frame f < data.num_frames). The
            rollout follows the clip's actions from its real context, so where the world is determined by the
            actions (the toy world's agent) this teaches the generator to return to the truth from wherever its own
            frames have drifted, which teacher forcing never shows it.
    """

    distill_weight: float = 0.0
    teacher_steps: int = 8
    truth_weight: float = 0.0

    def __post_init__(self) -> None:
        refuse_unless(math.isfinite(self.distill_weight) and self.distill_weight >= 0, "regression.distill_weight",
                      "a finite number >= 0", self.distill_weight)
        refuse_unless(self.teacher_steps >= 1, "regression.teacher_steps", ">= 1", self.teacher_steps)
        refuse_unless(math.isfinite(self.truth_weight) and self.truth_weight >= 0, "regression.truth_weight",
                      "a finite number >= 0", self.truth_weight)


# The defaults: AAPT's recipe (no regression beside the adversarial loss).
AAPT_ROLLOUT, AAPT_DISCRIMINATOR, AAPT_PENALTY = RolloutConfig(), DiscriminatorConfig(), PenaltyConfig()
NO_REGRESSION = RegressionConfig()
