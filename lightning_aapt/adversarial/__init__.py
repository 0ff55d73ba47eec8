"""Adversarial post-training parts: the causal discriminator and the losses."""

from lightning_aapt.adversarial.discriminator import CausalDiscriminator
from lightning_aapt.adversarial.losses import (
    approximate_gradient_penalty,
    exact_gradient_penalty,
    relativistic_losses,
)

__all__ = ["CausalDiscriminator", "approximate_gradient_penalty", "exact_gradient_penalty", "relativistic_losses"]
