"""Block-causal self-attention: the mask rule, window-local 3-D RoPE, and the attention paths.

Notation: B batch, nh heads, Fq/Fk query/key frames, N tokens per frame, hd head dim, ct temporal RoPE
channels, E = q/k channels after rotation (hd, or hd + ct with sink positions; zero-padded to a multiple of 8).

**Mask rule** (docs/architecture.md §3), one predicate used by every path: query frame q sees key frame k iff
`k <= q and (q - k < window or k < sink)`; all tokens of a frame see each other.

**Positions.** Temporal RoPE sees distances inside the visible set, never absolute frame indices. A window
frame k is at its true distance q - k (< N). Sink frames that have left the window sit just before the
oldest window frame, in order: the newest of them at distance N, the one before at N + 1, ... Together:

    d(q, k) = q - k                      for window frames
    d(q, k) = min(q, N + S - 1) - k      for sink frames (in or out of the window)

(while sinks are still leaving, min() picks q and the layout is the true one; once all S have left, the
sink block is pinned at distances N .. N + S - 1.)

**One masked kernel for that layout.** Window distances are differences of frame indices, so ordinary RoPE
(query at q, key at k) gives them. Sink distances are differences too, but with the query at
min(q, N + S - 1). So queries carry a second copy of their ct temporal channels rotated to that position;
a sink key puts its temporal channels in the second copy (zeros in the first), any other key in the first
(zeros in the second). The dot product then applies the right rotation to every (query, key) pair, and the
full sequence, the incremental cache read and any chunking run through the same masked SDPA/FlexAttention
call: q/k grow from hd to hd + ct channels, values stay hd. Positions are rebased to the first query frame,
so a stream of any length rotates by the same small angles as training (and two streams with the same sink
and window give bit-identical results). `reference_attention` computes the layout literally, by loops.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch
from torch import Tensor
from torch.nn.functional import scaled_dot_product_attention

from lightning_aapt.backbone.config import BackboneConfig
from lightning_aapt.backbone.embeddings import rope_angles, rotate, spatial_angles

Frames = tuple[int, ...]  # absolute frame indices, one per frame block of a q/k tensor

# How attention runs (not what it computes): "auto" (FlexAttention for full causal sequences on CUDA, SDPA
# otherwise), "sdpa", "flex", or "reference" (slow dense loops, for tests only).
AttentionBackend = Literal["auto", "sdpa", "flex", "reference"]
BACKENDS = ("auto", "sdpa", "flex", "reference")


def frame_visible(q: Tensor, k: Tensor, window: int | None, k_is_sink: Tensor | bool) -> Tensor:
    """The mask rule, elementwise on broadcastable tensors: query and key frame positions (any common origin)
    and whether each key is a sink frame."""
    visible = k <= q
    if window is not None:
        visible = visible & ((q - k < window) | k_is_sink)
    return visible


@dataclass(frozen=True)
class Layout:
    """The frames of one attention call, and where RoPE and the mask place them.

    Positions are rebased to the first query frame; a sink key before it sits at -1 (with sink positions its
    ordinary temporal channels are zeroed, and it precedes every query either way). Equality and hashing use
    the positions only, so two calls that compute the same function share one entry of the table caches:
    every step of a steady stream has the same layout. `q_frames`/`k_frames` keep the absolute ids.
    """

    q: Frames  # (Fq,) query positions: 0 .. Fq-1
    k: Frames  # (Fk,) key positions on the same axis
    q_sink: Frames | None  # (Fq,) position from which a query reads sink keys: min(frame, N + S - 1)
    k_sink: Frames | None  # (Fk,) a sink key's frame index, -1 for other keys
    full_sequence: bool  # queries = keys = frames 0 .. F-1 (FlexAttention's case)
    q_frames: Frames = field(compare=False)
    k_frames: Frames = field(compare=False)


def attention_layout(q_frames: Frames, k_frames: Frames, cfg: BackboneConfig) -> Layout:
    """The layout of query frames `q_frames` (consecutive) over key frames `k_frames` (see the module docstring)."""
    base = q_frames[0]
    full_sequence = q_frames == k_frames and base == 0
    if not cfg.uses_sink_positions:
        return Layout(tuple(f - base for f in q_frames), tuple(f - base for f in k_frames), None, None,
                      full_sequence, q_frames, k_frames)
    pinned_at = cfg.visible_frames - 1
    k_sink = tuple(f if f < cfg.sink_frames else -1 for f in k_frames)
    k_pos = tuple(max(f - base, -1) if s >= 0 else f - base for f, s in zip(k_frames, k_sink, strict=True))
    return Layout(tuple(f - base for f in q_frames), k_pos, tuple(min(f, pinned_at) for f in q_frames), k_sink,
                  full_sequence, q_frames, k_frames)


# --------------------------------------------------------------------------------------------- masks


def _cached_outside_inference_mode(factory):
    """Cache a tensor factory by its arguments, building outside inference mode: a tensor first made while
    streaming must stay usable by a later pass with gradients (inference tensors are not)."""

    @functools.lru_cache(maxsize=256)
    def cached(*args):
        with torch.inference_mode(False):
            return factory(*args)

    return functools.wraps(factory)(cached)


@_cached_outside_inference_mode
def token_mask(layout: Layout, tokens_per_frame: int, window: int | None, device: torch.device) -> Tensor | None:
    """Boolean SDPA mask (Fq*N, Fk*N), True = attend; None when every key is visible to every query.

    Cached by layout (built on the CPU, so deciding None never waits for the device).
    """
    q = torch.tensor(layout.q)[:, None]  # (Fq, 1)
    k = torch.tensor(layout.k)[None, :]  # (1, Fk)
    is_sink = False if layout.k_sink is None else torch.tensor(layout.k_sink)[None, :] >= 0  # (1, Fk)
    visible = frame_visible(q, k, window, is_sink)  # (Fq, Fk)
    if bool(visible.all()):
        return None
    n = tokens_per_frame
    return visible.repeat_interleave(n, dim=0).repeat_interleave(n, dim=1).to(device)  # (Fq*N, Fk*N)


@_cached_outside_inference_mode
def flex_block_mask(num_frames: int, tokens_per_frame: int, window: int | None, sink: int,
                    device: torch.device):
    """FlexAttention BlockMask of the mask rule over a full sequence of frames 0..F-1 (built lazily, cached)."""
    from torch.nn.attention.flex_attention import create_block_mask

    n = tokens_per_frame

    def mask_mod(b, h, q_idx, kv_idx):
        return frame_visible(q_idx // n, kv_idx // n, window, kv_idx // n < sink)

    length = num_frames * n
    return create_block_mask(mask_mod, B=None, H=None, Q_LEN=length, KV_LEN=length, device=device)


@functools.cache
def _compiled_flex_attention():
    # Compiled on first use, never at import (importing must stay cheap, and work without a compiler).
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


# ------------------------------------------------------------------------------------------- rotary


class RotaryTables(NamedTuple):
    """cos/sin of the rotation angles of a query/key layout (float32), temporal and spatial apart."""

    q: tuple[Tensor, Tensor]  # (Fq, 1, ct/2) each: temporal channels at window positions
    k: tuple[Tensor, Tensor]  # (Fk, 1, ct/2)
    spatial: tuple[Tensor, Tensor]  # (N, (hd - ct)/2): height and width channels, the same in every frame
    q_sink: tuple[Tensor, Tensor] | None  # (Fq, 1, ct/2): temporal channels at the sink-viewing position
    k_sink: tuple[Tensor, Tensor] | None  # (Fk, 1, ct/2): temporal channels of sink keys at their index
    k_is_sink: Tensor | None  # (Fk, 1, 1) float: 1 for sink frames


@_cached_outside_inference_mode
def rotary_tables(layout: Layout, grid: tuple[int, int], cfg: BackboneConfig, device: torch.device) -> RotaryTables:
    """cos/sin tables for `layout` on a (h, w) token grid, cached by layout: a steady stream builds them once."""
    ct = cfg.rope_split[0]

    def temporal(positions: Frames) -> tuple[Tensor, Tensor]:
        t = rope_angles(torch.tensor(positions, device=device), ct, cfg.rope_theta)[:, None]  # (Fx, 1, ct/2)
        return t.cos(), t.sin()

    spatial = spatial_angles(grid[0], grid[1], cfg.rope_split, cfg.rope_theta, device)  # (N, (ch+cw)/2)
    spatial_tables = (spatial.cos(), spatial.sin())
    if layout.q_sink is None:
        return RotaryTables(temporal(layout.q), temporal(layout.k), spatial_tables, None, None, None)
    is_sink = torch.tensor([s >= 0 for s in layout.k_sink], device=device, dtype=torch.float32)  # (Fk,)
    return RotaryTables(temporal(layout.q), temporal(layout.k), spatial_tables, temporal(layout.q_sink),
                        temporal(tuple(max(s, 0) for s in layout.k_sink)), is_sink[:, None, None])


def apply_rotary(q: Tensor, k: Tensor, tables: RotaryTables, ct: int) -> tuple[Tensor, Tensor]:
    """Rotate q (B, nh, Fq, N, hd) and k (B, nh, Fk, N, hd); returns (B, nh, Fq*N, E), (B, nh, Fk*N, E).

    Channels [0, ct) rotate with time, [ct, hd) with height and width. E is hd (+ ct with sink positions), padded
    with zero channels to a multiple of 8 (exact: they add nothing to a dot product), so that the fused SDPA
    kernels, which want q/k widths in multiples of 8, take the call (head dim 128 + 44 -> 176, not 172).
    """
    q_space, k_space = rotate(q[..., ct:], *tables.spatial), rotate(k[..., ct:], *tables.spatial)
    q_time, k_time = rotate(q[..., :ct], *tables.q), rotate(k[..., :ct], *tables.k)  # (B, nh, F, N, ct)
    if tables.q_sink is None:
        parts_q, parts_k = [q_time, q_space], [k_time, k_space]
    else:
        is_sink = tables.k_is_sink.to(k.dtype)  # (Fk, 1, 1)
        q_extra = rotate(q[..., :ct], *tables.q_sink)  # (B, nh, Fq, N, ct)
        k_extra = rotate(k[..., :ct], *tables.k_sink) * is_sink  # (B, nh, Fk, N, ct)
        parts_q = [q_time, q_space, q_extra]  # (B, nh, Fq, N, hd + ct)
        parts_k = [k_time * (1 - is_sink), k_space, k_extra]
    pad = -sum(p.shape[-1] for p in parts_q) % 8
    if pad:
        parts_q.append(q.new_zeros(*q.shape[:-1], pad))
        parts_k.append(k.new_zeros(*k.shape[:-1], pad))
    return torch.cat(parts_q, dim=-1).flatten(2, 3), torch.cat(parts_k, dim=-1).flatten(2, 3)


# -------------------------------------------------------------------------------------------- paths


def resolve_backend(backend: AttentionBackend, cfg: BackboneConfig, q: Tensor, full_sequence: bool) -> str:
    """Which path runs: FlexAttention only for a causal full sequence on CUDA; SDPA otherwise."""
    if backend == "auto":
        backend = "flex" if (q.is_cuda and full_sequence and not cfg.bidirectional) else "sdpa"
    if backend == "flex" and not q.is_cuda:
        raise RuntimeError("attention_backend='flex' needs CUDA tensors (FlexAttention has no CPU backward); "
                           "use attention_backend='sdpa' or 'auto' on CPU")
    return backend


def block_causal_attention(q: Tensor, k: Tensor, v: Tensor, layout: Layout, grid: tuple[int, int],
                           cfg: BackboneConfig, backend: AttentionBackend = "auto") -> Tensor:
    """Attention of query frames over key frames under the mask rule with window-local RoPE.

    Args:
        q: (B, nh, Fq, N, hd) un-rotated queries of frames `layout.q_frames`.
        k, v: (B, nh, Fk, N, hd) un-rotated keys and values of frames `layout.k_frames`.
        grid: (h, w) token grid of a frame, N = h * w.
    Returns:
        (B, nh, Fq, N, hd)
    """
    full_sequence = layout.full_sequence
    backend = resolve_backend(backend, cfg, q, full_sequence)
    if backend == "reference":
        return reference_attention(q, k, v, layout.q_frames, layout.k_frames, grid, cfg)
    B, nh, Fq, N, hd = q.shape
    ct = cfg.rope_split[0]
    window = None if cfg.bidirectional else cfg.window_frames
    tables = rotary_tables(layout, grid, cfg, q.device)
    qr, kr = apply_rotary(q, k, tables, ct)  # (B, nh, Fq*N, E), (B, nh, Fk*N, E)
    vf = v.flatten(2, 3)  # (B, nh, Fk*N, hd)
    scale = hd**-0.5
    if cfg.bidirectional:
        out = scaled_dot_product_attention(qr, kr, vf, scale=scale)  # (B, nh, Fq*N, hd)
    elif backend == "flex" and full_sequence:
        block_mask = flex_block_mask(Fq, N, window, cfg.sink_frames, q.device)
        out = _compiled_flex_attention()(qr, kr, vf, block_mask=block_mask, scale=scale)  # (B, nh, Fq*N, hd)
    else:
        mask = token_mask(layout, N, window, q.device)
        out = masked_sdpa(qr, kr, vf, mask, scale, equal_widths=q.is_cuda)  # (B, nh, Fq*N, hd)
    return out.unflatten(2, (Fq, N))  # (B, nh, Fq, N, hd)


def masked_sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, equal_widths: bool) -> Tensor:
    """SDPA of q, k (B, nh, Lq/Lk, E) over v (B, nh, Lk, hd) -> (B, nh, Lq, hd).

    `equal_widths`: an unmasked call (a steady cached step: every stored frame is visible) gets v zero-padded to E
    and the output cut back to hd (exact), because the flash and cuDNN kernels need q, k and v equally wide; with
    sink positions E > hd. A masked call goes to the memory-efficient kernel, which takes v as it is.
    """
    hd = v.shape[-1]
    if mask is None and equal_widths and q.shape[-1] != hd:
        v = torch.nn.functional.pad(v, (0, q.shape[-1] - hd))  # (B, nh, Lk, E)
        return scaled_dot_product_attention(q, k, v, scale=scale)[..., :hd]
    return scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def reference_distances(q: int, k_frames: Frames, cfg: BackboneConfig) -> dict[int, int]:
    """Temporal distance of every key frame that query frame q sees, built literally from the layout rule.

    Independent of `attention_layout` (used to test it): window frames at their true distance, then the
    sink frames that left the window laid out one by one before the oldest window frame.
    """
    if cfg.bidirectional:
        return {k: q - k for k in k_frames}
    if cfg.window_frames is None:
        return {k: q - k for k in k_frames if k <= q}
    n = cfg.window_frames
    distances = {k: q - k for k in k_frames if q - n < k <= q}
    departed = sorted((k for k in k_frames if k < cfg.sink_frames and k <= q - n), reverse=True)
    next_distance = max(distances.values()) + 1  # just before the oldest window frame
    for k in departed:
        distances[k] = next_distance
        next_distance += 1
    return distances


def reference_attention(q: Tensor, k: Tensor, v: Tensor, q_frames: Frames, k_frames: Frames,
                        grid: tuple[int, int], cfg: BackboneConfig) -> Tensor:
    """Slow, obviously correct attention for tests: per query frame, explicit scores over its visible keys.

    Each query frame is rotated at temporal position 0 and each visible key at minus its distance, so the
    RoPE relative rotation equals the layout of `reference_distances`. Shapes as `block_causal_attention`.
    """
    ct = cfg.rope_split[0]
    hd = q.shape[-1]
    spatial = spatial_angles(grid[0], grid[1], cfg.rope_split, cfg.rope_theta, q.device)  # (N, (ch+cw)/2)

    def rotated(x: Tensor, position: int) -> Tensor:  # x (B, nh, N, hd)
        t = rope_angles(torch.tensor([position], device=x.device), ct, cfg.rope_theta)  # (1, ct/2)
        angles = torch.cat([t.expand(spatial.shape[0], -1), spatial], dim=-1)  # (N, hd/2)
        return rotate(x, angles.cos(), angles.sin())

    outputs = []
    for i, qf in enumerate(q_frames):
        distances = reference_distances(qf, k_frames, cfg)
        query = rotated(q[:, :, i], 0)  # (B, nh, N, hd)
        keys, values = [], []
        for j, kf in enumerate(k_frames):
            if kf in distances:
                keys.append(rotated(k[:, :, j], -distances[kf]))  # (B, nh, N, hd)
                values.append(v[:, :, j])
        keys_t, values_t = torch.cat(keys, dim=2), torch.cat(values, dim=2)  # (B, nh, Nk, hd)
        scores = torch.einsum("bhqd,bhkd->bhqk", query, keys_t) * hd**-0.5  # (B, nh, N, Nk)
        outputs.append(torch.einsum("bhqk,bhkd->bhqd", scores.softmax(dim=-1), values_t))  # (B, nh, N, hd)
    return torch.stack(outputs, dim=2)  # (B, nh, Fq, N, hd)
