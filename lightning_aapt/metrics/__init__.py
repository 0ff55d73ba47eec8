"""Metrics as torchmetrics `Metric`s: streaming statistics, reduced across ranks, computed once."""

from lightning_aapt.metrics.frechet import FrechetDistance

__all__ = ["FrechetDistance"]
