"""Text encoders: `encode(list[str]) -> (B, L, Dt)` precomputed embeddings, stored in the shards.

Real encoders (T5 / umT5 from local weights) implement the same `TextEncoder` protocol; the toy encoder is
deterministic, offline and needs no weights.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    dim: int
    max_tokens: int

    def encode(self, texts: list[str]) -> Tensor:
        """Embeddings (B, L, Dt) float32, L = max_tokens, zero rows after the last token."""
        ...


def trimmed_lengths(embeddings: Tensor) -> list[int]:
    """For (B, L, Dt) embeddings zero-padded after each prompt (the protocol's convention): the number of rows up to
    the last non-zero one."""
    nonzero = embeddings.abs().amax(dim=-1) > 0  # (B, L)
    last = torch.arange(1, nonzero.shape[1] + 1) * nonzero  # (B, L): position + 1 where non-zero
    return last.amax(dim=1).tolist()


class HashTextEncoder:
    """Bag of hashed words with sinusoidal positions: a fixed random vector per word (from its BLAKE2 hash),
    plus a position code, unit-normalised per token. Same caption -> same embedding, on any machine.

    Args:
        dim: Dt, embedding width.
        max_tokens: L; longer captions are truncated.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 24) -> None:
        if dim < 2 or dim % 2:
            raise ValueError(f"HashTextEncoder dim must be even and >= 2, got {dim}")
        self.dim, self.max_tokens = dim, max_tokens
        self.name = f"hash-words-{dim}x{max_tokens}"

    def word_vector(self, word: str) -> Tensor:
        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        return torch.randn(self.dim, generator=torch.Generator().manual_seed(seed))

    def encode(self, texts: list[str]) -> Tensor:
        out = torch.zeros(len(texts), self.max_tokens, self.dim)
        freqs = torch.exp(-math.log(100.0) * torch.arange(0, self.dim, 2) / self.dim)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())[: self.max_tokens]
            for j, word in enumerate(words):
                position = torch.zeros(self.dim)
                position[0::2], position[1::2] = torch.sin(j * freqs), torch.cos(j * freqs)
                token = self.word_vector(word) + 0.5 * position
                out[i, j] = token / token.norm() * math.sqrt(self.dim) / 4
        return out
