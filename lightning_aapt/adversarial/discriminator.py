"""`CausalDiscriminator`: a causal copy of the backbone with per-frame logit heads (AAPT §2.2 (3)).

Notation: B batch, F frames, C latent channels, H/W latent height/width, N tokens per frame, D width.

Frames enter through the noisy-input channels at the discriminator's own timestep t (AAPT: t ~ U(0, 1),
unshifted); the recycled channels hold zeros (the paper leaves that channel unspecified). So D sees a video
only through its noised frames, and real and fake videos are presented identically: a clean copy of the
previous frame would bypass the noise augmentation (D separated real from fake through it at t = 0.9, where the
noisy channel says little), and a segment cut from the middle of a long rollout would carry a real-looking
frame where a real clip starts from zeros, a cue the generator cannot change. Temporal context comes from the
block-causal attention over the earlier noised frames.
Heads follow APT §3.3: at a few depths, one learnable query token per head attends to each frame's tokens;
the outputs are concatenated, normalised and projected to one logit per frame. Because the backbone is
block-causal, logit f judges the prefix up to frame f and never changes with later frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from lightning_aapt.backbone import CausalVideoDiT
from lightning_aapt.diffusion import add_noise


class FrameQueryHead(nn.Module):
    """One learnable query attends to the N tokens of each frame: (B, F, N, D) -> (B, F, D)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.randn(dim) / dim**0.5)  # (D,)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, F, N, D = x.shape
        nh, hd = self.num_heads, D // self.num_heads
        kv = self.kv(self.norm(x)).view(B * F, N, 2, nh, hd).permute(2, 0, 3, 1, 4)  # (2, B*F, nh, N, hd)
        q = self.query.view(1, nh, 1, hd).expand(B * F, nh, 1, hd)  # (B*F, nh, 1, hd)
        out = scaled_dot_product_attention(q, kv[0], kv[1])  # (B*F, nh, 1, hd)
        return self.proj(out.reshape(B, F, D))  # (B, F, D)


class CausalDiscriminator(nn.Module):
    """Per-frame logits (B, F) of a video under the block-causal backbone.

    Args:
        backbone: a causal `CausalVideoDiT` (AAPT: initialised from the stage-1 weights).
        head_layers: blocks (0-based) whose outputs feed a query head; default the middle and the last.
    """

    def __init__(self, backbone: CausalVideoDiT, head_layers: tuple[int, ...] | None = None) -> None:
        super().__init__()
        cfg = backbone.cfg
        if cfg.bidirectional:
            raise ValueError("the discriminator must be causal (per-frame logits judge prefixes): "
                             "convert_to_causal() the backbone first")
        depth = cfg.depth
        self.head_layers = tuple(head_layers) if head_layers else tuple(sorted({depth // 2, depth - 1}))
        if any(not 0 <= layer < depth for layer in self.head_layers):
            raise ValueError(f"discriminator head_layers {self.head_layers} must lie in 0..{depth - 1}")
        self.backbone = backbone
        self.heads = nn.ModuleList(FrameQueryHead(cfg.dim, cfg.num_heads) for _ in self.head_layers)
        width = cfg.dim * len(self.head_layers)
        self.out = nn.Sequential(nn.LayerNorm(width, eps=1e-6), nn.Linear(width, 1))

    def forward(self, video: Tensor, t: Tensor, noise: Tensor, text: Tensor, controls: Tensor | None = None) -> Tensor:
        """Logits (B, F) of video (B, F, C, H, W), noised to per-clip t (B,) with `noise` (B, F', C, H, W), F' >= F
        (its first F frames are used, so a shorter segment is judged with the same noise as a clip's prefix)."""
        B, F = video.shape[:2]
        tt = t.reshape(B, 1).expand(B, F)  # (B, F)
        recycled = torch.zeros_like(video) if self.backbone.cfg.recycled_input else None  # (B, F, C, H, W)
        _, _, features = self.backbone.trunk(add_noise(video, noise[:, :F], tt), tt, recycled, text, controls,
                                             feature_layers=self.head_layers)
        pooled = torch.cat([head(x) for head, x in zip(self.heads, features, strict=True)], dim=-1)  # (B, F, D*k)
        return self.out(pooled).squeeze(-1).float()  # (B, F)
