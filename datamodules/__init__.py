"""WebDataset data modules and the shard-writing helpers used by `prepare`."""

from datamodules.web_video import VideoBatch, WebVideoDataModule

__all__ = ["VideoBatch", "WebVideoDataModule"]
