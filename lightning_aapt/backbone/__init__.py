"""The causal video backbone: config, model, attention paths, KV cache (torch only)."""

from lightning_aapt.backbone.attention import AttentionBackend
from lightning_aapt.backbone.config import PRESETS, BackboneConfig
from lightning_aapt.backbone.kv_cache import KVCache
from lightning_aapt.backbone.model import CausalVideoDiT, convert, convert_to_causal, recycled_frames

__all__ = ["PRESETS", "AttentionBackend", "BackboneConfig", "CausalVideoDiT", "KVCache", "convert", "convert_to_causal",
           "recycled_frames"]
