"""Lightning callbacks for evaluation during training: FVD / Fréchet distance, long-horizon drift, videos."""

from callbacks.drift import LongHorizonDriftCallback
from callbacks.fvd import FVDCallback
from callbacks.video_logger import VideoLogger

__all__ = ["FVDCallback", "LongHorizonDriftCallback", "VideoLogger"]
