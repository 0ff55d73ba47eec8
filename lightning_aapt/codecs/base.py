"""`LatentCodec`: what a video autoencoder must offer to the framework (the toy codec and real VAEs alike).

Videos are (B, T, 3, H, W) float in [0, 1]; latents (B, F, C, H/s, W/s). A codec compresses time by
`temporal_factor`; a causal VAE (Wan's) encodes the first frame alone (`first_frame_alone`), so T = 1 + tf (F - 1)
and latent 0 is an image latent; otherwise T = tf F. `latent_frames` / `video_frames` convert between the two.
Decoding a stream live goes through `stream_decoder()`: one latent frame in, its video frames out, with whatever
state the codec carries between frames (a causal VAE's convolution cache), equal to decoding the whole sequence.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class StreamDecoder(Protocol):
    def step(self, latent: Tensor) -> Tensor:
        """One latent frame (B, C, h, w) of a stream -> its video frames (B, t, 3, H, W) in [0, 1] (t = 1 for
        latent 0 of a first-frame-alone codec, else temporal_factor)."""
        ...

    def reset(self) -> None:
        """Forget the stream: the next step decodes a stream's first latent frame."""
        ...


@runtime_checkable
class LatentCodec(Protocol):
    name: str
    latent_channels: int
    spatial_factor: int
    temporal_factor: int
    first_frame_alone: bool

    def encode(self, video: Tensor) -> Tensor:
        """(B, T, 3, H, W) in [0, 1] -> (B, F, C, H/s, W/s), F = latent_frames(codec, T)."""
        ...

    def decode(self, latents: Tensor) -> Tensor:
        """(B, F, C, h, w) -> (B, video_frames(codec, F), 3, h*s, w*s) in [0, 1]."""
        ...

    def stream_decoder(self) -> StreamDecoder:
        """A fresh decoder of one stream, frame by frame (see the module docstring)."""
        ...


def latent_frames(codec: LatentCodec, video_frames: int) -> int:
    """F, the latent frames `codec` makes of T video frames; a T it cannot encode is an error naming the rule."""
    tf, T = codec.temporal_factor, video_frames
    if codec.first_frame_alone:
        if T < 1 or (T - 1) % tf:
            raise ValueError(f"codec {codec.name} encodes 1 + {tf}k video frames (the first alone); got {T}")
        return 1 + (T - 1) // tf
    if T < 1 or T % tf:
        raise ValueError(f"codec {codec.name} encodes a multiple of {tf} video frames; got {T}")
    return T // tf


def video_frames(codec: LatentCodec, latent_frames: int) -> int:
    """T, the video frames `codec` decodes from F latent frames."""
    tf, F = codec.temporal_factor, latent_frames
    return (1 + tf * (F - 1) if F else 0) if codec.first_frame_alone else tf * F


class FrameDecoder:
    """The stream decoder of a codec without state between latent frames: each decoded on its own."""

    def __init__(self, codec: LatentCodec) -> None:
        self.codec = codec

    def step(self, latent: Tensor) -> Tensor:
        return self.codec.decode(latent[:, None])  # (B, tf, 3, H, W)

    def reset(self) -> None:
        pass
