"""Adversarial post-training parts: the causal discriminator, the losses and the negative clips."""

from lightning_aapt.adversarial.discriminator import CausalDiscriminator
from lightning_aapt.adversarial.losses import (
    approximate_gradient_penalty,
    exact_gradient_penalty,
    relativistic_losses,
)
from lightning_aapt.adversarial.negatives import fade_out_detail

__all__ = ["CausalDiscriminator", "approximate_gradient_penalty", "exact_gradient_penalty", "fade_out_detail",
           "relativistic_losses"]
