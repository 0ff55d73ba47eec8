"""`StreamingGenerator`: real-time autoregressive generation, one latent frame per step, through a KV cache.

Notation: B streams, F frames, C latent channels, H/W latent height/width, A control width, L text tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_aapt.backbone import CausalVideoDiT, KVCache
from lightning_aapt.diffusion import euler_sample, timestep_schedule


class StreamingGenerator:
    """Owns a causal model's stream state: the KV cache, the recycled frame and the text.

    Frame f's input is fresh noise ⊕ frame f-1 (the previous output, or the user's first frame) ⊕ its
    controls (AAPT §2.1). With `steps=1` a frame costs one network evaluation at t = 1, x0 = noise - v
    (AAPT's 1-NFE generator), and that pass's keys/values are the frame's cache entry: no second pass.
    With `steps=K` each frame is K Euler steps on the shifted schedule (how stage-1/2 models sample): the
    first K-1 evaluations only read the cache and the last one appends its keys/values as the frame's
    entry, since its input is the nearest to the finished frame that the sampler sees without an extra pass.

    The first pass is frame 0 of the cache, so with `sink_frames=1` it stays visible forever; a user's
    first frame enters through its recycled channels (as in AAPT) and is not emitted again.
    Everything runs under `torch.inference_mode` (or `no_grad`, see below). Once the window is full, a step
    allocates no new state: the cache, recycled frame and noise live in fixed buffers (activations are the
    forward's own).

    Args:
        model: a causal `CausalVideoDiT` (bidirectional=False).
        latent_size: (H, W) of the latents when `reset` gets no first frame.
        steps: network evaluations per frame (1 = AAPT's generator).
        shift: time shift of the K-step schedule (ignored for steps=1: its only step is t = 1 -> 0).
        seed: seed of the noise generator (on the model's device).
        max_frames: capacity of an unbounded cache (window_frames=None); default the config's.
        inference_mode: run under `torch.inference_mode` (fastest); False runs under `torch.no_grad`, so the
            cache and frames can later feed a pass with gradients (student forcing in stage 3).
    """

    def __init__(self, model: CausalVideoDiT, latent_size: tuple[int, int] | None = None, steps: int = 1,
                 shift: float = 1.0, seed: int = 0, max_frames: int | None = None,
                 inference_mode: bool = True) -> None:
        if model.cfg.bidirectional:
            raise ValueError("StreamingGenerator needs a causal model; convert_to_causal() a bidirectional one")
        param = next(model.parameters())
        self.model, self.steps, self.latent_size, self.max_frames = model, steps, latent_size, max_frames
        self.device, self.dtype = param.device, param.dtype
        self._no_grad = torch.inference_mode if inference_mode else torch.no_grad
        self.schedule = timestep_schedule(steps, shift, device=self.device)  # (K + 1,)
        self.rng = torch.Generator(device=self.device).manual_seed(seed)
        self.cache: KVCache | None = None
        self.text: Tensor | None = None
        self._recycled: Tensor | None = None  # (B, C, H, W)
        self._noise: Tensor | None = None  # (B, C, H, W)

    @property
    def num_frames(self) -> int:
        """Frames generated since the last `reset`."""
        return 0 if self.cache is None else self.cache.num_frames

    def reset(self, text: Tensor, first_frame: Tensor | None = None) -> None:
        """Start new streams: text (B, L, Dt); optional first frame (B, C, H, W) to continue from."""
        B = text.shape[0]
        C = self.model.cfg.latent_channels
        if first_frame is not None:
            if first_frame.dim() != 4 or first_frame.shape[:2] != (B, C):
                raise ValueError(f"first_frame must be (B, C, H, W) with B={B}, C={C}; got {tuple(first_frame.shape)}")
            size = tuple(first_frame.shape[-2:])
        elif self.latent_size is not None:
            size = tuple(self.latent_size)
        else:
            raise ValueError("StreamingGenerator needs latent_size=(H, W) at construction or a first_frame")
        shape = (B, C, *size)
        with self._no_grad():
            if self.cache is None or self.cache.batch_size != B or self._recycled.shape != shape:
                self.cache = self.model.new_cache(B, self.max_frames)
                self._recycled = torch.zeros(shape, device=self.device, dtype=self.dtype)
                self._noise = torch.empty(shape, device=self.device, dtype=self.dtype)
            else:
                self.cache.reset()
                self._recycled.zero_()
            if first_frame is not None:
                self._recycled.copy_(first_frame)
            self.text = text.to(self.device, self.dtype)  # one tensor for the whole stream: text K/V cached

    def step(self, controls: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Generate the next latent frame of every stream: controls (B, A), noise (B, C, H, W) -> (B, C, H, W)."""
        if self.cache is None:
            raise RuntimeError("call StreamingGenerator.reset(text, first_frame=None) before step()")
        B = self._recycled.shape[0]
        last = self.steps - 1
        with self._no_grad():
            if noise is None:
                noise = self._noise.normal_(generator=self.rng)
            elif noise.shape != self._recycled.shape:
                raise ValueError(f"noise must be {tuple(self._recycled.shape)}; got {tuple(noise.shape)}")
            frame_controls = None if controls is None else controls.to(self.device, self.dtype)[:, None]  # (B, 1, A)
            recycled = self._recycled[:, None]  # (B, 1, C, H, W)

            def velocity(x: Tensor, t: Tensor, i: int) -> Tensor:
                return self.model(x[:, None], t.reshape(1, 1).expand(B, 1), recycled, self.text, frame_controls,
                                  cache=self.cache, cache_write=i == last)[:, 0]  # (B, C, H, W)

            frame = euler_sample(velocity, noise.to(self.dtype), self.schedule)  # (B, C, H, W)
            self._recycled.copy_(frame)
        return frame

    def generate(self, num_frames: int, controls: Tensor | None = None, progress: bool = False) -> Tensor:
        """`num_frames` more frames: controls (B, F, A) or None -> latents (B, F, C, H, W)."""
        if self.cache is None:
            raise RuntimeError("call StreamingGenerator.reset(text, first_frame=None) before generate()")
        if controls is not None and controls.shape[1] < num_frames:
            raise ValueError(f"controls cover {controls.shape[1]} frames but {num_frames} were asked for")
        with self._no_grad():
            out = torch.empty(self._recycled.shape[0], num_frames, *self._recycled.shape[1:],
                              device=self.device, dtype=self.dtype)  # (B, F, C, H, W)
            frames = range(num_frames)
            if progress:
                from tqdm.auto import tqdm

                frames = tqdm(frames, desc="streaming", unit="frame")
            for f in frames:
                out[:, f] = self.step(None if controls is None else controls[:, f])
        return out
