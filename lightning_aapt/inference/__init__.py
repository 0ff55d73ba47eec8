"""Inference without Lightning: the streaming generator."""

from lightning_aapt.inference.streaming import StreamingGenerator, stream_after_context

__all__ = ["StreamingGenerator", "stream_after_context"]
