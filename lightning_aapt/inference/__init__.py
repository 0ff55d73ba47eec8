"""Inference without Lightning: the streaming generator, its CUDA-graph replay and the overlapped decoder."""

from lightning_aapt.inference.decoding import OverlappedDecoder
from lightning_aapt.inference.graphs import StepGraphs
from lightning_aapt.inference.streaming import StreamingGenerator, stream_after_context

__all__ = ["OverlappedDecoder", "StepGraphs", "StreamingGenerator", "stream_after_context"]
