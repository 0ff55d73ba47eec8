"""`InteractiveSession`: one live stream a player steers, frame by frame, with no web code (a notebook, a script or
the `play` server drive it the same way).

Notation: K context frames, C latent channels, h/w latent height/width, t video frames per latent frame (the codec's
temporal factor; 1 for the toy codec, and for a first-frame-alone codec's latent 0), H/W video height/width.

A session owns a `StreamingGenerator` (one KV cache per noise level), the codec's stream decoder and the text
encoder. `reset(prompt, frames)` encodes K real video frames as the context (or takes their latents) and the prompt;
each `step(action)` makes the next latent frame from the action (one network evaluation per step at 1 NFE) and
decodes it at once; `set_prompt(text)` switches the prompt mid-stream (new text keys/values, the window kept).

Pacing (`Pacer`): one step per tick of the world's frame rate, the action read at the tick (the latest one wins,
none is queued), and never more than one frame ahead: a late tick is not made up by a burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.codecs import LatentCodec
from lightning_aapt.inference.streaming import StreamingGenerator
from lightning_aapt.text import TextEncoder
from lightning_aapt.video import to_uint8


@dataclass
class GeneratedFrame:
    """What one step made."""

    index: int  # latent frames generated since the last reset (0 = the first after the context)
    images: np.ndarray  # (t, H, W, 3) uint8 video frames, decoded
    latent: Tensor  # (C, h, w)
    model_seconds: float  # the network's time for this frame (all its steps)
    decode_seconds: float


class InteractiveSession:
    """A causal generator played live: `reset`, then `step(action)` per frame; `set_prompt` at any time.

    Args:
        model: a causal backbone (stage 1, 2 or 3), in eval mode on its device.
        codec: the latent codec of its data (`stream_decoder()` decodes frame by frame).
        text_encoder: encodes prompt strings to (1, L, Dt) (None: prompts are given encoded).
        steps: network evaluations per frame (1 for stage 3; stages 1-2 play with more).
        shift: time shift of a K-step schedule.
        seed: noise seed of the stream (a reset restarts it, so a session replays exactly).
        max_frames: frames a model without a window (`window_frames=None`) can play before its cache is full.
    """

    def __init__(self, model: CausalVideoDiT, codec: LatentCodec, text_encoder: TextEncoder | None, steps: int = 1,
                 shift: float = 1.0, seed: int = 0, max_frames: int = 4096) -> None:
        if model.cfg.bidirectional:
            raise ValueError("InteractiveSession plays a causal model (stage 1, 2 or 3), not a bidirectional one")
        self.model, self.codec, self.text_encoder = model, codec, text_encoder
        self.steps, self.shift, self.seed, self.max_frames = steps, shift, seed, max_frames
        self.generator: StreamingGenerator | None = None
        self.decoder = codec.stream_decoder()
        self.prompt: str | None = None
        self.frames_generated = 0
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype

    @property
    def action_dim(self) -> int:
        return self.model.cfg.control_dim

    def reset(self, prompt: str | Tensor, frames: Tensor | None = None, latents: Tensor | None = None,
              actions=None) -> None:
        """Start a stream from K real frames: video `frames` (T, 3, H, W) in [0, 1] (encoded to K latent frames) or
        `latents` (K, C, h, w); `prompt` a string or its encoding (1, L, Dt); `actions` (K, A) the context frames'
        controls (default zeros)."""
        if (frames is None) == (latents is None):
            raise ValueError("InteractiveSession.reset needs the context as video frames or as latents (one of them)")
        if latents is None:
            latents = self.codec.encode(frames[None].float())[0]  # (K, C, h, w)
        context = latents[None].to(self.device, self.dtype)  # (1, K, C, h, w)
        K = context.shape[1]
        controls = None
        if self.action_dim:
            controls = torch.zeros(1, K, self.action_dim) if actions is None else torch.as_tensor(actions)[None]
            controls = controls.to(self.device, self.dtype)
        self.generator = StreamingGenerator(self.model, steps=self.steps, shift=self.shift, seed=self.seed,
                                            max_frames=self.max_frames)
        self.prompt = prompt if isinstance(prompt, str) else None
        self.generator.reset(self.encode(prompt), context=context, context_controls=controls)
        self.decoder.reset()
        with torch.inference_mode():
            for k in range(K):  # a causal decoder decodes a latent from the ones before it
                self.decoder.step(context[:, k].float())
        self.frames_generated = 0

    def encode(self, prompt: str | Tensor) -> Tensor:
        """A prompt's encoding (1, L, Dt); an encoding is passed through."""
        if isinstance(prompt, str):
            if self.text_encoder is None:
                raise ValueError("this session has no text encoder: pass the prompt's encoding (1, L, Dt)")
            prompt = self.text_encoder.encode([prompt])
        return prompt.to(self.device, self.dtype)

    def set_prompt(self, prompt: str | Tensor) -> None:
        """Attend to `prompt` from the next frame on; the window is kept."""
        self._started().set_prompt(self.encode(prompt))
        self.prompt = prompt if isinstance(prompt, str) else None

    def step(self, action=None) -> GeneratedFrame:
        """The next frame under `action` (A,), given to the model as it is (None: no controls, or zeros for a
        controlled model); a world bounds its own actions (the toy world's: `world.scene.clip_action`)."""
        generator = self._started()
        controls = None
        if self.action_dim:
            a = torch.zeros(self.action_dim) if action is None else torch.as_tensor(action, dtype=torch.float32)
            if a.shape != (self.action_dim,):
                raise ValueError(f"action must have {self.action_dim} values; got shape {tuple(a.shape)}")
            controls = a[None].to(self.device, self.dtype)  # (1, A)
        start = time.perf_counter()
        latent = generator.step(controls)  # (1, C, h, w)
        if latent.device.type == "cuda":
            torch.cuda.synchronize(latent.device)
        made = time.perf_counter()
        with torch.inference_mode():
            video = self.decoder.step(latent.float())  # (1, t, 3, H, W)
        images = to_uint8(video[0])
        done = time.perf_counter()
        frame = GeneratedFrame(self.frames_generated, images, latent[0].float().cpu(), made - start, done - made)
        self.frames_generated += 1
        return frame

    def memory_bytes(self) -> int:
        """Bytes held by the stream's KV caches."""
        return self.generator.memory_bytes() if self.generator is not None else 0

    def _started(self) -> StreamingGenerator:
        if self.generator is None:
            raise RuntimeError("call InteractiveSession.reset(prompt, frames) first")
        return self.generator


class Pacer:
    """Ticks at `fps`: `delay()` is how long to wait for the next tick, `tick()` marks one taken. A tick taken late
    moves the schedule on from now (no burst of frames to catch up) and counts as `late`."""

    def __init__(self, fps: float, tolerance: float = 0.25, clock: Callable[[], float] = time.perf_counter) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.period, self.tolerance, self.clock = 1.0 / fps, tolerance, clock
        self.next: float | None = None
        self.late = 0

    def delay(self) -> float:
        return 0.0 if self.next is None else max(0.0, self.next - self.clock())

    def tick(self) -> None:
        now = self.clock()
        if self.next is None or now > self.next + self.tolerance * self.period:
            self.late += self.next is not None
            self.next = now + self.period
        else:
            self.next += self.period


def paced(session: InteractiveSession, fps: float, action: Callable[[], object], frames: int,
          clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep
          ) -> Iterator[GeneratedFrame]:
    """`frames` steps of a started session at `fps`, each under `action()` read at its tick (the latest input)."""
    pacer = Pacer(fps, clock=clock)
    for _ in range(frames):
        sleep(pacer.delay())
        pacer.tick()
        yield session.step(action())
