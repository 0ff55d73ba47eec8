"""Text encoders producing the precomputed text embeddings of the shards."""

from lightning_aapt.text.encoders import HashTextEncoder, TextEncoder, trimmed_lengths

__all__ = ["HashTextEncoder", "TextEncoder", "trimmed_lengths"]
