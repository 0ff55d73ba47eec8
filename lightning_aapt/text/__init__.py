"""Text encoders producing the precomputed text embeddings of the shards."""

from lightning_aapt.text.encoders import HashTextEncoder, TextEncoder

__all__ = ["HashTextEncoder", "TextEncoder"]
