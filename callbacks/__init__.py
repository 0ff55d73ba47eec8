"""Lightning callbacks: video logging (FVD and drift callbacks arrive with issue 5)."""

from callbacks.video_logger import VideoLogger

__all__ = ["VideoLogger"]
