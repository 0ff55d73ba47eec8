"""`CausalVideoDiT`: a latent video diffusion transformer with block-causal attention and a KV cache.

Notation: B batch, F latent frames, C latent channels, H/W latent height/width, p patch size,
N = (H/p)*(W/p) tokens per frame, D width, nh heads, hd head dim, L text tokens, Dt text width,
A control width.

Wan2.1-style blocks: adaLN modulation from per-frame timesteps (a shared projection plus a learned per-block
table), self-attention under the mask rule with 3-D RoPE, cross-attention to the text, MLP. The input of
frame f is the patch embedding of its noisy latent, plus that of the recycled frame f-1, plus the embedding
of its control vector: the same function as one patch-embedding convolution over the channel
concatenation noisy ⊕ recycled ⊕ controls (AAPT §2.1), kept as separate projections so the recycled and
control groups can be added to a pretrained model zero-initialised. The output layer is zero-initialised.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from lightning_aapt.backbone.attention import (
    BACKENDS,
    AttentionBackend,
    Layout,
    attention_layout,
    block_causal_attention,
)
from lightning_aapt.backbone.config import BackboneConfig
from lightning_aapt.backbone.embeddings import patchify, timestep_features, unpatchify
from lightning_aapt.backbone.kv_cache import KVCache, LayerCache


class QKNorm(nn.RMSNorm):
    """RMSNorm of queries or keys (..., D): over each head's channels (weights (hd,)) or over all D channels at
    once (weights (D,), Wan's layout), as `BackboneConfig.qk_norm` says."""

    def __init__(self, cfg: BackboneConfig) -> None:
        self.heads = cfg.num_heads if cfg.qk_norm == "per_head" else 1
        super().__init__(cfg.dim // self.heads, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.unflatten(-1, (self.heads, -1))).flatten(-2)  # (..., D)


def qk_norm(cfg: BackboneConfig) -> nn.Module:
    return nn.Identity() if cfg.qk_norm == "none" else QKNorm(cfg)


class SelfAttention(nn.Module):
    """Self-attention of frames over themselves and, with a cache, over the stored frames."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.q_norm, self.k_norm = qk_norm(cfg), qk_norm(cfg)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x: Tensor, layout: Layout, grid: tuple[int, int], cache: LayerCache | None,
                backend: AttentionBackend) -> Tensor:
        B, F, N, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, F, N, D) each
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (heads(t, self.cfg.num_heads) for t in (q, k, v))  # (B, nh, F, N, hd) each
        if cache is not None:
            k, v = cache.update(k, v)  # (B, nh, Fk, N, hd): the stored frames of layout.k_frames, then the new
        out = block_causal_attention(q, k, v, layout, grid, self.cfg, backend)  # (B, nh, F, N, hd)
        return self.proj(out.permute(0, 2, 3, 1, 4).reshape(B, F, N, D))  # (B, F, N, D)


def heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, F, N, D) -> (B, nh, F, N, hd)."""
    return x.unflatten(-1, (num_heads, -1)).permute(0, 3, 1, 2, 4)


class CrossAttention(nn.Module):
    """Cross-attention of every video token to the text tokens (no positions, no mask)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.q = nn.Linear(cfg.dim, cfg.dim)
        self.kv = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.q_norm, self.k_norm = qk_norm(cfg), qk_norm(cfg)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def text_kv(self, text: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of embedded text (B, L, D): two (B, nh, L, hd)."""
        k, v = self.kv(text).chunk(2, dim=-1)  # (B, L, D) each
        nh = self.cfg.num_heads
        return self.k_norm(k).unflatten(-1, (nh, -1)).transpose(1, 2), v.unflatten(-1, (nh, -1)).transpose(1, 2)

    def forward(self, x: Tensor, text_kv: tuple[Tensor, Tensor]) -> Tensor:
        B, F, N, D = x.shape
        q = self.q_norm(self.q(x)).view(B, F * N, self.cfg.num_heads, self.cfg.head_dim).transpose(1, 2)
        out = scaled_dot_product_attention(q, *text_kv)  # (B, nh, F*N, hd)
        return self.proj(out.transpose(1, 2).reshape(B, F, N, D))  # (B, F, N, D)


class Block(nn.Module):
    """One transformer block; `mod` (B, F, 6, D) modulates it per frame (adaLN, Wan2.1), in float32."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=1e-6, elementwise_affine=False)
        self.self_attn = SelfAttention(cfg)
        self.norm3 = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.cross_attn = CrossAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=1e-6, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.hidden_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.hidden_dim, cfg.dim))
        self.modulation = nn.Parameter(torch.randn(6, cfg.dim) / cfg.dim**0.5)  # (6, D)

    def forward(self, x: Tensor, mod: Tensor, text: Tensor | None, layout: Layout, grid: tuple[int, int],
                cache: LayerCache | None, backend: AttentionBackend) -> Tensor:
        """`text`: embedded text (B, L, D) of this call, or None: the cache's prompt. Text K/V are computed here,
        inside the block, so a sharded block has its weights gathered."""
        encode = self.cross_attn.text_kv  # (B, L, D) -> (B, nh, L, hd) x 2
        text_kv = cache.prompt_kv(encode) if text is None else encode(text)  # the prompt's: encoded once
        # Modulation, its norms and the gated residual adds run in float32 (as Wan does), the rest in x's dtype.
        mod = mod.float() + self.modulation.float()  # (B, F, 6, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.unsqueeze(2).unbind(3)  # (B, F, 1, D) each
        h = (self.norm1(x.float()) * (1 + scale1) + shift1).type_as(x)  # (B, F, N, D)
        x = (x.float() + gate1 * self.self_attn(h, layout, grid, cache, backend).float()).type_as(x)
        x = x + self.cross_attn(self.norm3(x), text_kv)
        h = (self.norm2(x.float()) * (1 + scale2) + shift2).type_as(x)
        return (x.float() + gate2 * self.mlp(h).float()).type_as(x)


class CausalVideoDiT(nn.Module):
    """Velocity-predicting video DiT, block-causal (or bidirectional) with a sliding-window KV cache.

    `model(latents, timesteps, recycled, text, controls=None, cache=None)`:
        latents   (B, F, C, H, W)  noisy latent frames
        timesteps (B, F)           per-frame t in [0, 1], 1 = pure noise
        recycled  (B, F, C, H, W)  frame f-1 for each frame f (zeros for the very first frame); None only
                                   for a model without recycled input (`recycled_input=False`); with
                                   `recycle_generated=False` only stream position 0's is read
        text      (B, L, Dt)       text embeddings, always attended (cross-attention); None with a cache:
                                   the cache's prompt (`cache.set_prompt`), its keys/values computed once
        controls  (B, F, A)        per-frame controls when `control_dim` > 0
        cache     KVCache          from `new_cache`: the F frames are appended after those it holds
        cache_write                False: attend to the cache without storing (multi-step samplers)
        returns   (B, F, C, H, W)  velocity v = noise - x0

    `attention_backend` chooses how attention runs, not what it computes ("auto", "sdpa", "flex",
    "reference"; see attention.py); it is an attribute, not part of the config or the weights.
    """

    def __init__(self, cfg: BackboneConfig, attention_backend: AttentionBackend = "auto") -> None:
        super().__init__()
        if attention_backend not in BACKENDS:
            raise ValueError(f"attention_backend must be one of {', '.join(BACKENDS)}; got {attention_backend!r}")
        self.cfg = cfg
        self.attention_backend = attention_backend
        D = cfg.dim
        self.patch_embed = nn.Linear(cfg.patch_dim, D)
        self.recycled_embed = nn.Linear(cfg.patch_dim, D, bias=False) if cfg.recycled_input else None
        self.control_embed = nn.Linear(cfg.control_dim, D, bias=False) if cfg.control_dim else None
        self.time_embed = nn.Sequential(nn.Linear(cfg.freq_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.time_proj = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))
        self.text_embed = nn.Sequential(nn.Linear(cfg.text_dim, D), nn.GELU(approximate="tanh"), nn.Linear(D, D))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(D, eps=1e-6, elementwise_affine=False)
        self.head_modulation = nn.Parameter(torch.randn(2, D) / D**0.5)  # (2, D)
        self.head = nn.Linear(D, cfg.patch_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DiT initialisation; zero output layer and zero recycled/control input projections."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for module in (self.recycled_embed, self.control_embed, self.head):
            if module is not None:
                nn.init.zeros_(module.weight)
        nn.init.zeros_(self.head.bias)

    def new_cache(self, batch_size: int, max_frames: int = 1024) -> KVCache:
        """An empty KV cache for `batch_size` streams (`max_frames`: the capacity of an unbounded window)."""
        if self.cfg.bidirectional:
            raise ValueError("a bidirectional model (bidirectional=True) attends to all frames at once and "
                             "has no KV cache; convert it with convert_to_causal() first")
        return KVCache(self.cfg.depth, batch_size, self.cfg.window_frames, self.cfg.sink_frames,
                       max_frames)

    def forward(self, latents: Tensor, timesteps: Tensor, recycled: Tensor | None, text: Tensor | None,
                controls: Tensor | None = None, cache: KVCache | None = None, *,
                cache_write: bool = True) -> Tensor:
        H, W = latents.shape[-2:]
        x, c, _ = self.trunk(latents, timesteps, recycled, text, controls, cache, cache_write=cache_write)
        shift, scale = (c[:, :, None].float() + self.head_modulation.float()).unsqueeze(2).unbind(3)  # (B, F, 1, D)
        out = self.head((self.norm_out(x.float()) * (1 + scale) + shift).type_as(x))  # (B, F, N, C*p*p)
        return unpatchify(out, self.cfg.patch_size, H, W)  # (B, F, C, H, W)

    def trunk(self, latents: Tensor, timesteps: Tensor, recycled: Tensor | None, text: Tensor | None,
              controls: Tensor | None = None, cache: KVCache | None = None, *, cache_write: bool = True,
              feature_layers: tuple[int, ...] = ()) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Everything but the output layer: tokens after the last block (B, F, N, D), the per-frame time
        embedding (B, F, D), and the tokens after each block listed in `feature_layers` (0-based)."""
        cfg = self.cfg
        self._check_inputs(latents, timesteps, recycled, text, controls, cache)
        B, F, C, H, W = latents.shape
        p = cfg.patch_size
        grid = (H // p, W // p)
        if cache is None:
            q_frames = k_frames = tuple(range(F))
        else:
            q_frames, k_frames = cache.call_frames(F)
        layout = attention_layout(q_frames, k_frames, cfg)  # one per call, shared by every block
        first = q_frames[0]
        x = self.patch_embed(patchify(latents, p))  # (B, F, N, D)
        if self.recycled_embed is not None:
            if not cfg.recycle_generated:  # only position 0 (the given first frame) recycles
                kept = 1 if first == 0 else 0
                recycled = torch.cat([recycled[:, :kept], torch.zeros_like(recycled[:, kept:])], dim=1)
            x = x + self.recycled_embed(patchify(recycled, p))  # (B, F, N, D)
        if self.control_embed is not None:
            x = x + self.control_embed(controls.to(x.dtype))[:, :, None]  # (B, F, 1, D) over N tokens
        c = self.time_embed(timestep_features(timesteps, cfg.freq_dim).to(x.dtype))  # (B, F, D)
        mod = self.time_proj(c).unflatten(-1, (6, cfg.dim))  # (B, F, 6, D)
        if text is None:
            cache.embed_prompt(self.text_embed)  # the blocks encode the prompt's K/V once, then reuse them
            embedded = None
        else:
            embedded = self.text_embed(text)  # (B, L, D)
        features = []
        for i, block in enumerate(self.blocks):
            door = None if cache is None else cache.layer(i, write=cache_write)
            x = block(x, mod, embedded, layout, grid, door, self.attention_backend)  # (B, F, N, D)
            if i in feature_layers:
                features.append(x)
        if cache is not None and cache_write:
            cache.advance(F)
        return x, c, features

    def _check_inputs(self, latents: Tensor, timesteps: Tensor, recycled: Tensor | None, text: Tensor,
                      controls: Tensor | None, cache: KVCache | None) -> None:
        cfg = self.cfg
        if latents.dim() != 5:
            raise ValueError(f"latents must be (B, F, C, H, W); got shape {tuple(latents.shape)}")
        B, F, C, H, W = latents.shape
        if cfg.latent_channels != C:
            raise ValueError(f"latents have {C} channels but BackboneConfig.latent_channels={cfg.latent_channels}")
        if H % cfg.patch_size or W % cfg.patch_size:
            raise ValueError(f"latent height/width {H}x{W} must be divisible by BackboneConfig.patch_size="
                             f"{cfg.patch_size}")
        if tuple(timesteps.shape) != (B, F):
            raise ValueError(f"timesteps must be (B, F)=({B}, {F}) per-frame values; got {tuple(timesteps.shape)}")
        if cfg.recycled_input:
            if recycled is None or recycled.shape != latents.shape:
                got = None if recycled is None else tuple(recycled.shape)
                raise ValueError(f"recycled must have the latents' shape {tuple(latents.shape)} (frame f-1 for "
                                 f"each frame f, zeros for the first); got {got}")
        elif recycled is not None:
            raise ValueError("this model has no recycled-input channels (BackboneConfig.recycled_input=False); "
                             "pass recycled=None or convert it with convert_to_causal()")
        if text is None:
            if cache is None:
                raise ValueError("text is None but no cache was given: pass the text (B, L, Dt), or a cache "
                                 "with a prompt (cache.set_prompt(text))")
            text = cache.prompt
            if text is None:
                raise ValueError("text is None and the cache has no prompt: call cache.set_prompt(text) first")
        if text.dim() != 3 or text.shape[0] != B or text.shape[2] != cfg.text_dim:
            raise ValueError(f"text must be (B, L, Dt)=({B}, L, {cfg.text_dim}) (BackboneConfig.text_dim); "
                             f"got {tuple(text.shape)}")
        if cfg.control_dim:
            if controls is None or tuple(controls.shape) != (B, F, cfg.control_dim):
                got = None if controls is None else tuple(controls.shape)
                raise ValueError(f"controls must be (B, F, A)=({B}, {F}, {cfg.control_dim}) "
                                 f"(BackboneConfig.control_dim); got {got}")
        elif controls is not None:
            raise ValueError("controls were given but BackboneConfig.control_dim=0 (the model takes none)")
        if cache is not None and cfg.bidirectional:
            raise ValueError("a bidirectional model takes no KV cache (BackboneConfig.bidirectional=True)")


def recycled_frames(first: Tensor, frames: Tensor) -> Tensor:
    """The `recycled` input of `frames` (B, F, C, H, W) that follow the frame `first` (B, C, H, W): for each frame,
    the one before it (`first`, then frames 0..F-2). Training (teacher forcing: the real frames) and the stage-3
    rollout (the generator's own) lay frames out through this; streaming carries the last frame forward itself."""
    return torch.cat([first[:, None], frames[:, :-1]], dim=1)  # (B, F, C, H, W)


def convert(model: CausalVideoDiT, **changes) -> CausalVideoDiT:
    """`model`'s weights in a model of a changed config; new input groups start at zero.

    `changes` are BackboneConfig fields. Turning on `recycled_input`, or raising `control_dim` from 0, adds
    an input projection initialised to zero, so the output is unchanged whatever those inputs hold.
    Anything else that changes a weight's shape is an error naming the weights.
    """
    cfg = dataclasses.replace(model.cfg, **changes)
    converted = CausalVideoDiT(cfg, model.attention_backend).to(next(model.parameters()))
    load_converted(converted, model.state_dict(), f"cannot convert with {changes}")
    return converted


def load_converted(model: CausalVideoDiT, state: dict[str, Tensor], what: str) -> None:
    """Copy `state` (another config's weights) into `model`, whose recycled/control input projections may have no
    source and keep their (zero) initialisation; any other mismatch raises, naming the weights."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(f"{what}: the weights do not fit the config: {err}") from err
    bad_missing = set(missing) - {"recycled_embed.weight", "control_embed.weight"}
    if unexpected or bad_missing:
        raise ValueError(f"{what}: weights without a place {sorted(unexpected)}, weights without a source "
                         f"{sorted(bad_missing)}")


def convert_to_causal(model: CausalVideoDiT, **changes) -> CausalVideoDiT:
    """The causal form of a pretrained bidirectional model, with recycled-frame input channels (zero-init).

    `changes` are further BackboneConfig fields (e.g. window_frames=30, sink_frames=1, control_dim=6).
    """
    return convert(model, bidirectional=False, recycled_input=True, **changes)
