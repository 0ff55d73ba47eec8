"""Inference without Lightning: the streaming generator."""

from lightning_aapt.inference.streaming import StreamingGenerator

__all__ = ["StreamingGenerator"]
