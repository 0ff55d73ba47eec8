"""`KVCache`: the keys and values of every frame a stream may still attend to.

Notation: B batch, nh heads, F frames, N tokens per frame, hd head dim, S sink frames, R ring slots.

Lifecycle:
    cache = model.new_cache(batch_size)   # empty, nothing allocated yet
    cache.set_prompt(text)                # (B, L, Dt); its keys/values are computed once, on the next call
    model(x, t, recycled, None, controls, cache=cache)   # text=None: the prompt; appends the call's F frames
    model(..., cache=cache, cache_write=False)   # attends to the cache, stores nothing (Euler sub-steps)
    cache.set_prompt(other_text)          # a prompt switch: the frames are kept
    cache.reset()                         # empty again, storage kept, for a new stream

Storage per self-attention layer: keys and values (B, nh, S + R, N, hd), allocated on the first write (N is
known only then, from the latent size) and never reallocated. S pinned slots hold the sink frames, a ring
of R = window_frames slots the most recent frames; an unbounded cache (window_frames=None) pins every frame
up to `max_frames`. Keys are stored un-rotated; RoPE is applied at read time with window-local positions
(attention.py), so the cache never holds a position. Reads return the visible frames in temporal order.
The prompt's cross-attention keys/values are cached too, computed inside each block on the first call after
`set_prompt` (so a sharded block has its weights gathered). A call given its own `text` computes that text's
keys/values and leaves the prompt alone. Stored keys/values never carry gradients; the new frames and the
text of a call do (within that call).

The model talks to the cache through one door per call: `call_frames(F)` says which frames the call's queries
and keys are, `layer(i, write)` is the view a block reads and writes through, `advance(F)` (once, after the
last block) records the written frames.

A failed forward may leave some layers written and others not: `reset()` the cache before reusing it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lightning_aapt.backbone.attention import Frames


class KVCache:
    """Per-layer self-attention keys/values of a stream plus its text keys/values.

    Args:
        num_layers: transformer blocks of the model.
        batch_size: streams decoded together; every call must use it.
        window_frames: N of the model (None = unbounded: every frame is kept, up to `max_frames`).
        sink_frames: S of the model: frames 0..S-1 are kept forever.
        max_frames: capacity of an unbounded cache.
    """

    def __init__(self, num_layers: int, batch_size: int, window_frames: int | None, sink_frames: int,
                 max_frames: int) -> None:
        self.num_layers = num_layers
        self.batch_size = batch_size
        self.window_frames = window_frames
        self.sink_frames = sink_frames
        self.max_frames = max_frames
        if window_frames is None:
            self.pinned_slots, self.ring_slots = max_frames, 0
        else:
            self.pinned_slots, self.ring_slots = sink_frames, window_frames
        self.keys: list[Tensor | None] = [None] * num_layers  # (B, nh, S + R, N, hd) each
        self.values: list[Tensor | None] = [None] * num_layers
        self.prompt: Tensor | None = None  # (B, L, Dt) text every call without its own text attends to
        self._prompt_embedded: Tensor | None = None  # (B, L, D) the model's embedding of it, until encoded
        self._prompt_kv: list[tuple[Tensor, Tensor] | None] = [None] * num_layers  # (B, nh, L, hd) x 2 each
        self.num_frames = 0
        self.version = 0  # counts resets and prompt switches: what a recorded step (a CUDA graph) read is gone
        self._slot_frames: list[int] = [-1] * (self.pinned_slots + self.ring_slots)
        self._index_cache: dict[tuple[int, ...], Tensor] = {}

    # ------------------------------------------------------------------------------------- public

    def reset(self) -> None:
        """Forget every frame and the prompt; storage is kept for the next stream of the same shape."""
        self.num_frames = 0
        self.version += 1
        self._slot_frames = [-1] * len(self._slot_frames)
        self.prompt, self._prompt_embedded, self._prompt_kv = None, None, [None] * self.num_layers

    def set_prompt(self, text: Tensor) -> None:
        """Attend to `text` (B, L, Dt) from the next call on; the stored frames are kept (a prompt switch)."""
        if text.dim() != 3 or text.shape[0] != self.batch_size:
            raise ValueError(f"KVCache.set_prompt: text must be (B, L, Dt) with B={self.batch_size}; got "
                             f"{tuple(text.shape)}")
        self.prompt, self._prompt_embedded, self._prompt_kv = text, None, [None] * self.num_layers
        self.version += 1

    def embed_prompt(self, embed: Callable[[Tensor], Tensor]) -> None:
        """Before a call without text: embed the prompt (B, L, Dt) -> (B, L, D) if its keys/values are not
        stored yet (the blocks then encode it through `LayerCache.prompt_kv`)."""
        if self.prompt is None:
            raise ValueError("this call has no text and the cache no prompt: call cache.set_prompt(text) first, "
                             "or pass the text to the model")
        if self._prompt_embedded is None and any(kv is None for kv in self._prompt_kv):
            self._prompt_embedded = embed(self.prompt)

    def frames(self) -> Frames:
        """Frame ids currently stored, in temporal order."""
        return tuple(sorted(f for f in self._slot_frames if f >= 0))

    def call_frames(self, num_new: int) -> tuple[Frames, Frames]:
        """The frames of a call adding `num_new`: its query frames, and the key frames they attend to (the
        stored frames some of them may still see, in temporal order, then the new frames themselves)."""
        new = tuple(range(self.num_frames, self.num_frames + num_new))
        return new, self._visible_stored(self.num_frames) + new

    def layer(self, index: int, write: bool = True) -> LayerCache:
        """Block `index`'s door for one call; `write`: store the call's frames (then `advance` once)."""
        return LayerCache(self, index, write)

    def snapshot(self) -> KVCache:
        """An independent copy of the cache's current state (storage cloned; the prompt's K/V shared)."""
        copy = KVCache(self.num_layers, self.batch_size, self.window_frames, self.sink_frames, self.max_frames)
        copy.keys = [None if t is None else t.clone() for t in self.keys]
        copy.values = [None if t is None else t.clone() for t in self.values]
        copy.prompt, copy._prompt_embedded = self.prompt, self._prompt_embedded
        copy._prompt_kv = list(self._prompt_kv)
        copy.num_frames, copy._slot_frames, copy.version = self.num_frames, list(self._slot_frames), self.version
        return copy

    def advance(self, num_new: int) -> None:
        """Mark `num_new` appended frames as stored in every layer (called once per forward, after the last
        block); the prompt's embedding is dropped once every layer holds its keys/values."""
        for frame in range(self.num_frames, self.num_frames + num_new):
            self._slot_frames[self._slot(frame)] = frame
        self.num_frames += num_new
        if all(kv is not None for kv in self._prompt_kv):
            self._prompt_embedded = None

    def memory_bytes(self) -> int:
        """Bytes held by the stored keys and values."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)

    # ------------------------------------------------------------------------------------ private

    def _update(self, layer: int, k: Tensor, v: Tensor, write: bool) -> tuple[Tensor, Tensor]:
        """Keys/values of `call_frames(F)[1]` for new frames' k, v (B, nh, F, N, hd): stored ones, then the new."""
        self._check(layer, k, v)
        first = self.num_frames
        new = tuple(range(first, first + k.shape[2]))
        old = self._visible_stored(first)
        if self.keys[layer] is None:
            self._allocate(layer, k)
        if write and not k.requires_grad and not self._write_evicts(new, old):
            self._write(layer, k, v, new)  # the common case, one frame at a time: read straight from storage
            return self._read(layer, old + new)
        if old:
            k_old, v_old = self._read(layer, old)
            k_ctx = torch.cat([k_old, k], dim=2)  # (B, nh, Fk, N, hd)
            v_ctx = torch.cat([v_old, v], dim=2)
        else:
            k_ctx, v_ctx = k, v
        if write:
            self._write(layer, k, v, new)
        return k_ctx, v_ctx

    def _check(self, layer: int, k: Tensor, v: Tensor) -> None:
        if k.shape != v.shape or k.dim() != 5:
            raise ValueError(f"KVCache.update: keys/values must both be (B, nh, F, N, hd); got "
                             f"{tuple(k.shape)} and {tuple(v.shape)}")
        if k.shape[0] != self.batch_size:
            raise ValueError(f"KVCache was made for batch_size={self.batch_size} but got a batch of "
                             f"{k.shape[0]}; make a new cache with model.new_cache({k.shape[0]})")
        end = self.num_frames + k.shape[2]
        if self.window_frames is None and end > self.max_frames:
            raise RuntimeError(
                f"KVCache overflow: an unbounded cache (window_frames=None) holds at most max_frames="
                f"{self.max_frames} frames and this call would reach {end}; pass a larger max_frames to "
                "model.new_cache(), or set window_frames in the BackboneConfig")
        stored = self.keys[layer]
        if stored is None:
            return
        if stored.dtype != k.dtype or stored.device != k.device:
            raise TypeError(f"KVCache layer {layer} holds {stored.dtype} on {stored.device} but got "
                            f"{k.dtype} on {k.device}; reset() keeps the storage, so make a new cache "
                            "after changing the model's dtype or device")
        if stored.shape[1] != k.shape[1] or stored.shape[3:] != k.shape[3:]:
            raise ValueError(f"KVCache layer {layer} stores frames of {stored.shape[3]} tokens but got "
                             f"{k.shape[3]} (heads/head dim {tuple(k.shape[1::3])}): the latent size changed "
                             "within a stream; make a new cache for the new size")

    def _allocate(self, layer: int, k: Tensor) -> None:
        B, nh, _, N, hd = k.shape
        slots = self.pinned_slots + self.ring_slots
        self.keys[layer] = k.new_zeros(B, nh, slots, N, hd)  # (B, nh, S + R, N, hd)
        self.values[layer] = k.new_zeros(B, nh, slots, N, hd)

    def _slot(self, frame: int) -> int:
        if frame < self.pinned_slots:
            return frame
        return self.pinned_slots + (frame - self.pinned_slots) % self.ring_slots

    def _visible_stored(self, first: int) -> Frames:
        """Stored frames that some frame >= `first` may still see (sinks, then the window), in order."""
        if self.window_frames is None:
            return tuple(range(first))
        sinks = tuple(range(min(self.sink_frames, first)))
        window = tuple(range(max(self.sink_frames, first - self.window_frames + 1), first))
        return sinks + window

    def _write_evicts(self, new: Frames, old: Frames) -> bool:
        """Would writing `new` overwrite a frame this call still reads (several frames at once, ring wraps)?"""
        slots = [self._slot(f) for f in old + new]
        return len(set(slots)) < len(slots)

    def _write(self, layer: int, k: Tensor, v: Tensor, new: Frames) -> None:
        # In order, so when more frames come than the ring holds, the most recent ones stay. Stored entries
        # never carry gradients (autograd through in-place writes into a shared buffer breaks: the next write
        # would change tensors a backward pass saved).
        for i, frame in enumerate(new):
            self.keys[layer][:, :, self._slot(frame)].copy_(k[:, :, i].detach())
            self.values[layer][:, :, self._slot(frame)].copy_(v[:, :, i].detach())

    def _read(self, layer: int, frames: Frames) -> tuple[Tensor, Tensor]:
        """Stored keys/values of `frames`, in that order: a view when their slots are contiguous."""
        slots = [self._slot(f) for f in frames]
        if slots == list(range(slots[0], slots[0] + len(slots))):
            return (self.keys[layer].narrow(2, slots[0], len(slots)),
                    self.values[layer].narrow(2, slots[0], len(slots)))
        index = self._index(tuple(slots))
        return self.keys[layer].index_select(2, index), self.values[layer].index_select(2, index)

    def _index(self, slots: tuple[int, ...]) -> Tensor:
        # A bounded cache cycles through at most R layouts, so their index tensors are built once.
        index = self._index_cache.get(slots)
        if index is None:
            with torch.inference_mode(False):  # usable later by passes with gradients too
                index = torch.tensor(slots, device=next(t.device for t in self.keys if t is not None))
            self._index_cache[slots] = index
        return index


class LayerCache:
    """One block's door into a `KVCache` for one call: its self-attention context and its prompt keys/values."""

    def __init__(self, cache: KVCache, layer: int, write: bool) -> None:
        self.cache, self.index, self.write = cache, layer, write

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """The call's new keys/values k, v (B, nh, F, N, hd), stored if writing -> keys and values (B, nh, Fk, N,
        hd) of the frames `cache.call_frames(F)` lists: the stored frames they may see, then themselves."""
        return self.cache._update(self.index, k, v, self.write)

    def prompt_kv(self, encode: Callable[[Tensor], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """The prompt's keys/values (B, nh, L, hd) x 2, encoded from its embedding by `encode` on first use."""
        cache = self.cache
        kv = cache._prompt_kv[self.index]
        if kv is None:
            kv = encode(cache._prompt_embedded)
            cache._prompt_kv[self.index] = (kv[0].detach(), kv[1].detach())
        return kv
