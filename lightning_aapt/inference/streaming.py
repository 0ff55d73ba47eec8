"""`StreamingGenerator`: real-time autoregressive generation, one latent frame per step, through a KV cache.

Notation: B streams, F frames, K steps per frame, C latent channels, H/W latent height/width, A control width,
L text tokens.

Streaming presents to the network exactly what training presented (stages 1-2, teacher forcing):
- **Layout.** Cache position p holds frame p + 1 of the video; frame 0 (the user's frame, or the first real
  context frame) enters only through the recycled channels of position 0, as in AAPT. Frame f's input is its
  noise ⊕ frame f - 1 ⊕ controls[f].
- **Noise level of the context.** Training draws one t per clip (AAPT), so a query at t always attended to
  context frames noised to that same t. A K-step sampler evaluates frame f at t_0 = 1 > t_1 > ... > t_{K-1}; its
  evaluation at t_i reads cache level i, which holds every earlier frame's keys/values from *its* evaluation
  at t_i (its own sampler state at t_i, a draw of x_{t_i}), and appends its own. So the context of every
  evaluation is at the query's noise level, with one KV cache per level (K x the memory of one), and no extra
  pass. With K = 1 there is one level, t = 1: AAPT's 1-NFE generator, x0 = noise - v, where that single pass's
  keys/values are the frame's cache entry.
- **Real context frames** (`reset(text, context=...)`, or `observe`) enter as training saw them: a real frame
  at level i is its latent noised to t_i (fresh noise) with the real previous frame recycled. That is how a
  stream continues a given video, and how evaluation shows the model motion before it generates.

With `sink_frames=1` cache position 0 stays visible forever. Everything runs under `torch.inference_mode` (or
`no_grad`, see below). Once the window is full a step allocates no new state: the caches, recycled frame and
noise live in fixed buffers (activations are the forward's own).

"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_aapt.backbone import CausalVideoDiT, KVCache
from lightning_aapt.diffusion import add_noise, euler_sample, frames_velocity, timestep_schedule
from lightning_aapt.inference.graphs import StepGraphs


class StreamingGenerator:
    """Owns a causal model's stream state: one KV cache per noise level, the recycled frame and the text.

    See the module docstring for the layout and the noise level of the context.

    Args:
        model: a causal `CausalVideoDiT` (bidirectional=False).
        latent_size: (H, W) of the latents when `reset` gets no context.
        steps: K, network evaluations per frame (1 = AAPT's generator).
        shift: time shift of the K-step schedule (ignored for steps=1: its only step is t = 1 -> 0).
        seed: seed of the noise generator (on the model's device).
        max_frames: capacity of an unbounded cache (window_frames=None).
        inference_mode: run under `torch.inference_mode` (fastest); False runs under `torch.no_grad`, so the
            cache and frames can later feed a pass with gradients (student forcing in stage 3).
        cuda_graphs: replay steady steps as CUDA graphs (`StepGraphs`; CUDA and a bounded window only).
    """

    def __init__(self, model: CausalVideoDiT, latent_size: tuple[int, int] | None = None, steps: int = 1,
                 shift: float = 1.0, seed: int = 0, max_frames: int = 1024,
                 inference_mode: bool = True, cuda_graphs: bool = False) -> None:
        if model.cfg.bidirectional:
            raise ValueError("StreamingGenerator needs a causal model; convert_to_causal() a bidirectional one")
        param = next(model.parameters())
        self.model, self.steps, self.latent_size, self.max_frames = model, steps, latent_size, max_frames
        self.device, self.dtype = param.device, param.dtype
        self._no_grad = torch.inference_mode if inference_mode else torch.no_grad
        self.schedule = timestep_schedule(steps, shift, device=self.device)  # (K + 1,)
        self.rng = torch.Generator(device=self.device).manual_seed(seed)
        self.caches: list[KVCache] = []  # level i: every frame's keys/values at t_i
        self.text: Tensor | None = None
        self._recycled: Tensor | None = None  # (B, C, H, W)
        self._noise: Tensor | None = None  # (B, C, H, W)
        self.graphs = StepGraphs(self) if cuda_graphs else None

    @property
    def cache(self) -> KVCache:
        """The KV cache of a 1-step stream (a K-step stream has one per level: `caches`)."""
        if len(self.caches) != 1:
            raise AttributeError(f"a {self.steps}-step stream keeps one KV cache per noise level: use .caches"
                                 if self.caches else "call StreamingGenerator.reset() first")
        return self.caches[0]

    @property
    def num_frames(self) -> int:
        """Cache positions filled since the last `reset` (observed context frames after the first, and generated
        frames)."""
        return self.caches[0].num_frames if self.caches else 0

    def memory_bytes(self) -> int:
        """Bytes held by every level's stored keys and values."""
        return sum(c.memory_bytes() for c in self.caches)

    def reset(self, text: Tensor, context: Tensor | None = None, context_controls: Tensor | None = None,
              first_frame: Tensor | None = None) -> None:
        """Start new streams: text (B, L, Dt); optionally real frames to continue from.

        Args:
            context: (B, K, C, H, W) real latent frames; frame 0 enters through the recycled channels and frames
                1..K-1 are observed into the cache (`observe`). Nothing of them is emitted again.
            context_controls: (B, K, A) their controls (entry 0 is unused: frame 0 is never an input).
            first_frame: (B, C, H, W), shorthand for a one-frame context.
        """
        if first_frame is not None:
            if context is not None:
                raise ValueError("pass either first_frame or context, not both")
            if first_frame.dim() != 4:
                raise ValueError(f"first_frame must be (B, C, H, W); got {tuple(first_frame.shape)}")
            context = first_frame[:, None]
        B = text.shape[0]
        C = self.model.cfg.latent_channels
        if context is not None:
            if context.dim() != 5 or context.shape[:1] != (B,) or context.shape[2] != C or context.shape[1] < 1:
                raise ValueError(f"context must be (B, K, C, H, W) with B={B}, K >= 1, C={C}; got "
                                 f"{tuple(context.shape)}")
            size = tuple(context.shape[-2:])
        elif self.latent_size is not None:
            size = tuple(self.latent_size)
        else:
            raise ValueError("StreamingGenerator needs latent_size=(H, W) at construction or a context")
        shape = (B, C, *size)
        with self._no_grad():
            if not self.caches or self.caches[0].batch_size != B or self._recycled.shape != shape:
                self.caches = [self.model.new_cache(B, self.max_frames) for _ in range(self.steps)]
                self._recycled = torch.zeros(shape, device=self.device, dtype=self.dtype)
                self._noise = torch.empty(shape, device=self.device, dtype=self.dtype)
            else:
                for cache in self.caches:
                    cache.reset()
                self._recycled.zero_()
            self.text = text.to(self.device, self.dtype)
            for cache in self.caches:
                cache.set_prompt(self.text)  # its keys/values computed once, on the first call
            if context is not None:
                self._recycled.copy_(context[:, 0])
        if context is not None and context.shape[1] > 1:
            self.observe(context[:, 1:], None if context_controls is None else context_controls[:, 1:])

    def set_prompt(self, text: Tensor) -> None:
        """Switch the prompt mid-stream: text (B, L, Dt) is attended from the next frame on (its keys/values computed
        once, on that frame); the frames in the window are kept."""
        self._check_started()
        if text.dim() != 3 or text.shape[0] != self.text.shape[0] or text.shape[2] != self.text.shape[2]:
            raise ValueError(f"set_prompt: text must be (B, L, Dt) with B={self.text.shape[0]}, "
                             f"Dt={self.text.shape[2]}; got {tuple(text.shape)}")
        self.text = text.to(self.device, self.dtype)
        for cache in self.caches:
            cache.set_prompt(self.text)

    def fork(self) -> StreamingGenerator:
        """An independent copy of the streams as they stand (caches, recycled frame, prompt and noise generator
        state): both continue alike given the same controls, and neither's steps change the other."""
        self._check_started()
        copy = StreamingGenerator.__new__(StreamingGenerator)
        copy.__dict__.update(self.__dict__)
        copy.caches = [cache.snapshot() for cache in self.caches]
        copy._recycled, copy._noise = self._recycled.clone(), self._noise.clone()
        copy.rng = torch.Generator(device=self.device)
        copy.rng.set_state(self.rng.get_state())
        copy.graphs = None if self.graphs is None else StepGraphs(copy)
        return copy

    def observe(self, frames: Tensor, controls: Tensor | None = None, noise: Tensor | None = None) -> None:
        """Feed real frames (B, F, C, H, W) through the caches as context, with their controls (B, F, A): at each
        level i a frame is its latent noised to t_i with the previous real frame recycled (teacher forcing). The
        noise is fresh per frame and level, or `noise` (B, F, C, H, W), one per frame for every level (as a
        training draw noises a frame to any t; the stage-3 rollout passes its own)."""
        self._check_started()
        if noise is not None and noise.shape != frames.shape:
            raise ValueError(f"noise must have the frames' shape {tuple(frames.shape)}; got {tuple(noise.shape)}")
        with self._no_grad():
            frames = frames.to(self.device, self.dtype)
            B = frames.shape[0]
            for f in range(frames.shape[1]):
                c = None if controls is None else controls[:, f : f + 1].to(self.device, self.dtype)  # (B, 1, A)
                recycled = self._recycled[:, None]  # (B, 1, C, H, W)
                for level, cache in enumerate(self.caches):
                    t = self.schedule[level].reshape(1, 1).expand(B, 1)  # (B, 1)
                    drawn = self._noise.normal_(generator=self.rng) if noise is None else noise[:, f].to(self._noise)
                    self.model(add_noise(frames[:, f : f + 1], drawn[:, None], t), t, recycled, None, c,
                               cache=cache)
                self._recycled.copy_(frames[:, f])

    def step(self, controls: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Generate the next latent frame of every stream: controls (B, A), noise (B, C, H, W) -> (B, C, H, W).
        With `cuda_graphs`, steady steps without given noise replay a CUDA graph of `eager_step` (graphs.py)."""
        if self.graphs is not None and noise is None:
            self._check_started()
            with self._no_grad():
                return self.graphs.step(controls)
        return self.eager_step(controls, noise)

    def eager_step(self, controls: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """`step` run op by op (the reference every other path equals)."""
        self._check_started()
        with self._no_grad():
            if noise is None:
                noise = self._noise.normal_(generator=self.rng)
            elif noise.shape != self._recycled.shape:
                raise ValueError(f"noise must be {tuple(self._recycled.shape)}; got {tuple(noise.shape)}")
            frame_controls = None if controls is None else controls.to(self.device, self.dtype)[:, None]  # (B, 1, A)
            recycled = self._recycled[:, None]  # (B, 1, C, H, W)

            velocity = frames_velocity(self.model, recycled, None, frame_controls, self.caches)  # level i: cache i
            frame = euler_sample(velocity, noise.to(self.dtype)[:, None], self.schedule)[:, 0]  # (B, C, H, W)
            self._recycled.copy_(frame)
        return frame

    def generate(self, num_frames: int, controls: Tensor | None = None, progress: bool = False) -> Tensor:
        """`num_frames` more frames: controls (B, F, A) or None -> latents (B, F, C, H, W)."""
        self._check_started()
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

    def _check_started(self) -> None:
        if not self.caches:
            raise RuntimeError("call StreamingGenerator.reset(text, context=None) before step(), observe() or "
                               "generate()")


def stream_after_context(model: CausalVideoDiT, text: Tensor, context: Tensor, controls: Tensor | None,
                         num_frames: int, steps: int = 1, shift: float = 1.0, seed: int = 0) -> Tensor:
    """Clips continued after their first K real frames `context` (B, K, C, H, W) to `num_frames` frames in all,
    frame f driven by controls[:, f] (B, T, A): the streamed frames K..T-1, (B, T-K, C, H, W). Every evaluation of
    a stream (validation, FD, drift, `predict`) starts this way."""
    K = context.shape[1]
    gen = StreamingGenerator(model, steps=steps, shift=shift, seed=seed)
    gen.reset(text, context=context, context_controls=None if controls is None else controls[:, :K])
    return gen.generate(num_frames - K, None if controls is None else controls[:, K:])
