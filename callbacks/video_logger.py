"""`VideoLogger`: real and generated clips side by side, as animated GIFs in TensorBoard and MP4s on disk.

TensorBoard's `add_video` writes nothing with moviepy 2.x, so the GIF is encoded with Pillow and written as an
image summary (TensorBoard's image plugin plays GIFs).
"""

from __future__ import annotations

import io
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary

from callbacks.base import EveryNValidations
from lightning_aapt.video import to_uint8, write_video


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """(T, H, W, 3) uint8 -> an animated GIF."""
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return buffer.getvalue()


def gif_summary(tag: str, frames: np.ndarray, fps: float) -> Summary:
    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
    return Summary(value=[Summary.Value(tag=tag, image=image)])


class VideoLogger(EveryNValidations):
    """After validation, generate clips from the first validation batch and log them next to the real ones.

    Generation is the module's `predict_step` (the EMA weights): a causal stage keeps each clip's first real
    frame and streams the rest with the clip's actions; a bidirectional one samples the clip jointly.

    Args:
        every_n_validations: log after validations n, 2n, ... (sanity checks excluded).
        num_clips: clips of the first validation batch to show.
        max_frames: longer videos are subsampled in time to at most this many frames (GIF size).
        scale: pixel upscaling.
        fps: playback rate.
        save_dir: where MP4s go (default: `<logger log_dir>/videos`).
    """

    def __init__(self, every_n_validations: int = 1, num_clips: int = 2, max_frames: int = 64, scale: int = 4,
                 fps: float = 8.0, save_dir: str | None = None) -> None:
        super().__init__(every_n_validations)
        self.num_clips, self.max_frames = num_clips, max_frames
        self.scale, self.fps, self.save_dir = scale, fps, save_dir

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule, batch) -> None:
        codec = trainer.datamodule.codec
        with torch.no_grad():
            generated = module.predict_step(batch, 0)["latents"][: self.num_clips]  # (b, F, C, H, W)
        real = codec.decode(batch.latents[: self.num_clips].float().cpu())  # (b, T, 3, S, S)
        fake = codec.decode(generated.float().cpu())
        stride = max(1, -(-real.shape[1] // self.max_frames))
        step = trainer.global_step
        save_dir = Path(self.save_dir or Path(trainer.log_dir or ".") / "videos")
        writer = trainer.logger.experiment if trainer.logger is not None else None
        for i in range(real.shape[0]):
            video = to_uint8(torch.cat([real[i], fake[i]], dim=-1)[::stride])  # real | generated
            video = video.repeat(self.scale, axis=1).repeat(self.scale, axis=2)
            if getattr(writer, "file_writer", None) is not None:  # a torch SummaryWriter (TensorBoard)
                writer.file_writer.add_summary(gif_summary(f"val/video_{i}", video, self.fps), step)
            write_video(save_dir / f"step{step:06d}_clip{i}.mp4", video, self.fps)
