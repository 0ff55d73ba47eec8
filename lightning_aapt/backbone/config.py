"""`BackboneConfig`: every hyperparameter of the causal video DiT, validated, with named presets."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Literal

# How queries and keys are RMS-normalised before attention: over each head's channels (weights (hd,)), over all
# heads at once before the head split (weights (D,): Wan's layout), or not at all.
QKNorm = Literal["per_head", "across_heads", "none"]
QK_NORMS = ("per_head", "across_heads", "none")


@dataclass(frozen=True)
class BackboneConfig:
    """Shape and attention layout of a `CausalVideoDiT`: what the weights mean. How a model runs (its attention
    kernel, a cache's capacity) is chosen where it runs: `CausalVideoDiT(cfg, attention_backend=...)`,
    `model.new_cache(batch, max_frames)`.

    Args:
        latent_channels: C, channels of one latent frame.
        patch_size: p, spatial patch edge; latent height and width must be divisible by it.
        dim: D, transformer width.
        depth: number of transformer blocks.
        num_heads: attention heads; `dim` must be divisible by it.
        mlp_dim: hidden width of each block's MLP (None: 4 * dim).
        text_dim: Dt, width of the precomputed text embeddings (always attended through cross-attention).
        control_dim: A, width of the per-frame control vector (pose, camera, actions); 0 = no controls.
        window_frames: N, how many most recent latent frames a frame attends to, itself included
            (AAPT: 30). None = unbounded.
        sink_frames: S, the first frames of a stream, kept visible forever (AAPT keeps the first frame).
        bidirectional: full attention over all frames and no cache: the pretrained-teacher form.
        recycled_input: the input has recycled-frame channels (frame f-1 concatenated to frame f).
            A pretrained bidirectional model has none; `convert_to_causal` adds them zero-initialised.
        recycle_generated: every position recycles the frame before it (AAPT); False: only position 0 does (the
            first, given frame) and later positions get zeros, so the past reaches a frame through the KV cache
            alone (AAPT App. E's "no recycling" ablation). Applied inside the model, so training, streaming and
            the rollout agree.
        freq_dim: width of the sinusoidal timestep features.
        rope_theta: RoPE base frequency for the temporal and both spatial axes.
        qk_norm: RMS-normalise queries and keys (stabilises large models): "per_head" over each head's channels,
            "across_heads" over all D channels before the head split (Wan), "none". True/False (older
            checkpoints) read as "per_head"/"none".
    """

    latent_channels: int = 4
    patch_size: int = 2
    dim: int = 64
    depth: int = 2
    num_heads: int = 2
    mlp_dim: int | None = None
    text_dim: int = 16
    control_dim: int = 0
    window_frames: int | None = None
    sink_frames: int = 1
    bidirectional: bool = False
    recycled_input: bool = True
    recycle_generated: bool = True
    freq_dim: int = 256
    rope_theta: float = 10000.0
    qk_norm: QKNorm = "per_head"

    def __post_init__(self) -> None:
        if isinstance(self.qk_norm, bool):  # written before the layouts existed
            object.__setattr__(self, "qk_norm", "per_head" if self.qk_norm else "none")
        if self.qk_norm not in QK_NORMS:
            raise ValueError(f"BackboneConfig.qk_norm must be one of {', '.join(QK_NORMS)}; got {self.qk_norm!r}")
        positive = ("latent_channels", "patch_size", "dim", "depth", "num_heads", "text_dim", "freq_dim")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"BackboneConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ValueError(f"BackboneConfig.dim={self.dim} must be divisible by num_heads={self.num_heads}")
        if self.head_dim % 2 or self.head_dim < 8:
            raise ValueError(
                f"BackboneConfig head dim dim/num_heads={self.head_dim} must be even and >= 8 "
                "(3-D RoPE splits it over time, height and width)")
        if self.mlp_dim is not None and self.mlp_dim < 1:
            raise ValueError(f"BackboneConfig.mlp_dim must be >= 1 or None, got {self.mlp_dim}")
        if self.control_dim < 0:
            raise ValueError(f"BackboneConfig.control_dim must be >= 0 (0 = no controls), got {self.control_dim}")
        if self.window_frames is not None and self.window_frames < 1:
            raise ValueError(
                f"BackboneConfig.window_frames must be >= 1 or None (unbounded), got {self.window_frames}")
        if self.sink_frames < 0:
            raise ValueError(f"BackboneConfig.sink_frames must be >= 0, got {self.sink_frames}")
        if self.patch_dim > self.dim:
            warnings.warn(
                f"BackboneConfig: a patch has {self.patch_dim} features (latent_channels * patch_size^2) but the "
                f"width is dim={self.dim}: near t = 1 the velocity is mostly the input noise, which a narrower "
                "model cannot pass through; training stalls. Raise dim or lower patch_size.", stacklevel=3)
        if self.rope_theta <= 0:
            raise ValueError(f"BackboneConfig.rope_theta must be > 0, got {self.rope_theta}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def hidden_dim(self) -> int:
        """Width of the MLP hidden layer."""
        return self.mlp_dim if self.mlp_dim is not None else 4 * self.dim

    @property
    def patch_dim(self) -> int:
        """Features of one patch of one latent frame: C * p * p."""
        return self.latent_channels * self.patch_size**2

    @property
    def rope_split(self) -> tuple[int, int, int]:
        """Head-dim channels rotated by (time, height, width); each even, summing to the head dim."""
        spatial = 2 * (self.head_dim // 6)
        return self.head_dim - 2 * spatial, spatial, spatial

    @property
    def visible_frames(self) -> int | None:
        """Frames a new frame's attention reads once the stream is long: its window plus the sink frames (None: an
        unbounded window, every frame so far). The one place the two are added."""
        return None if self.window_frames is None else self.window_frames + self.sink_frames

    @property
    def uses_sink_positions(self) -> bool:
        """True when sink frames can leave the window and need their own RoPE layout (see attention.py)."""
        return not self.bidirectional and self.window_frames is not None and self.sink_frames > 0

    def replace(self, **changes) -> BackboneConfig:
        """A validated copy with `changes` applied (same as `dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides) -> BackboneConfig:
        """A named configuration; `overrides` replace single fields. Names: see `PRESETS`."""
        if name not in PRESETS:
            raise ValueError(f"unknown backbone preset {name!r}; choose one of {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)


PRESETS: dict[str, BackboneConfig] = {
    # Unit tests: milliseconds per forward.
    "tiny": BackboneConfig(latent_channels=4, patch_size=2, dim=48, depth=2, num_heads=2, text_dim=16,
                           control_dim=0, freq_dim=32),
    # Quick start on the toy world (CPU): 8x8 latents of 48 channels (32x32 frames, toy codec) -> 16 tokens
    # per frame; 2-D actions as controls.
    "toy": BackboneConfig(latent_channels=48, patch_size=2, dim=256, depth=4, num_heads=4, text_dim=64,
                          control_dim=2, window_frames=4, sink_frames=1, freq_dim=128),
    # CPU benchmarks: about 110M parameters.
    "bench": BackboneConfig(latent_channels=16, patch_size=2, dim=768, depth=12, num_heads=12, text_dim=512,
                            control_dim=0, window_frames=30, sink_frames=1),
    # Wan's published text-to-video transformers in their pretrained, bidirectional form (what `load_wan` builds;
    # `convert_to_causal` adds the recycled input and the window). 128-wide heads, qk-norm across heads, umT5 text.
    # Wan 2.2 A14B's two experts each have the 14B shape.
    "wan2.1-t2v-1.3b": BackboneConfig(latent_channels=16, patch_size=2, dim=1536, depth=30, num_heads=12,
                                      mlp_dim=8960, text_dim=4096, qk_norm="across_heads", bidirectional=True,
                                      recycled_input=False),
    "wan2.1-t2v-14b": BackboneConfig(latent_channels=16, patch_size=2, dim=5120, depth=40, num_heads=40,
                                     mlp_dim=13824, text_dim=4096, qk_norm="across_heads", bidirectional=True,
                                     recycled_input=False),
    "wan2.2-ti2v-5b": BackboneConfig(latent_channels=48, patch_size=2, dim=3072, depth=30, num_heads=24,
                                     mlp_dim=14336, text_dim=4096, qk_norm="across_heads", bidirectional=True,
                                     recycled_input=False),
    # AAPT's generator: 36 blocks and 8B parameters are published (AAPT App. A); width, MLP, latent channels
    # and text width are not, so they are chosen to land at ~8B with 128-wide heads.
    "aapt-8b-like": BackboneConfig(latent_channels=16, patch_size=2, dim=3584, depth=36, num_heads=28,
                                   mlp_dim=16384, text_dim=4096, window_frames=30, sink_frames=1),
}
# Wan2.1-T2V-1.3B made causal with AAPT's window (30 frames + 1 sink; Wan 2.1 was pretrained on 21 latent frames).
PRESETS["wan-1.3b-like"] = PRESETS["wan2.1-t2v-1.3b"].replace(bidirectional=False, recycled_input=True,
                                                              window_frames=30, sink_frames=1)
