"""Writing decoded frames to disk: animated GIF (Pillow) or MP4 (PyAV), chosen by the file extension."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lightning_aapt.files import write_atomic


def to_uint8(video) -> np.ndarray:
    """(T, 3, H, W) float in [0, 1] (tensor or array) -> (T, H, W, 3) uint8."""
    array = video.detach().cpu().numpy() if hasattr(video, "detach") else np.asarray(video)
    return (array.clip(0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


def write_video(path: str | Path, frames: np.ndarray, fps: float, scale: int = 1) -> Path:
    """Write (T, H, W, 3) uint8 frames to `path` (.gif or .mp4), each pixel scaled up `scale` times.

    Written under a temporary name and renamed into place, so a crash never leaves half a file.
    """
    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video needs (T, H, W, 3) uint8 frames; got {frames.shape} {frames.dtype}")
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    elif suffix == ".mp4":
        import av

        height, width = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("mpeg4", rate=round(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.bit_rate = 4_000_000
            for frame in frames:
                packet = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
                container.mux(stream.encode(packet))
            container.mux(stream.encode())
    else:
        raise ValueError(f"{path}: write .gif or .mp4")
    os.replace(tmp, path)
    return path


def contact_sheet(rows: list[np.ndarray], every: int, scale: int = 1) -> np.ndarray:
    """One image of several videos: each (T, H, W, 3) uint8 video becomes a row of its frames 0, every, 2*every,
    ..., one pixel of black between frames and rows; every pixel scaled up `scale` times -> (rows, cols, 3)."""
    if not rows or any(r.ndim != 4 or r.shape[-1] != 3 or r.dtype != np.uint8 for r in rows):
        raise ValueError("contact_sheet needs (T, H, W, 3) uint8 videos")
    if every < 1:
        raise ValueError(f"contact_sheet every must be >= 1, got {every}")
    pad = ((1, 0), (1, 0), (0, 0))
    lines = [np.concatenate([np.pad(f, pad) for f in r[::every]], axis=1) for r in rows]  # (H+1, n(W+1), 3)
    width = max(line.shape[1] for line in lines)
    sheet = np.concatenate([np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))) for line in lines], axis=0)
    sheet = np.pad(sheet, ((0, 1), (0, 1), (0, 0)))
    return sheet.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else sheet


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 image as PNG (`files.write_atomic`: a temporary name, renamed into place)."""
    import io

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    write_atomic(path, png.getvalue())
    return path
