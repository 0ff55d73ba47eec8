"""lightning_aapt: autoregressive adversarial post-training of causal video diffusion transformers."""

__version__ = "0.1.0"
