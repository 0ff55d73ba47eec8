"""Lightning callbacks for evaluation during training: FVD / Fréchet distance, long-horizon drift, videos, what
stage 3's discriminator can see."""

from callbacks.critic import DiscriminatorProbeCallback
from callbacks.drift import LongHorizonDriftCallback
from callbacks.fvd import FVDCallback
from callbacks.video_logger import VideoLogger

__all__ = ["DiscriminatorProbeCallback", "FVDCallback", "LongHorizonDriftCallback", "VideoLogger"]
