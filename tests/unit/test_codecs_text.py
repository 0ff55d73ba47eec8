"""Toy codec (exactly invertible) and toy text encoder (deterministic)."""

import numpy as np
import pytest
import torch

from lightning_aapt.codecs import LatentCodec, ToyCodec
from lightning_aapt.text import HashTextEncoder, TextEncoder
from lightning_aapt.world import scripted_actions, simulate

pytestmark = pytest.mark.unit


def test_toy_codec_round_trip_is_exact():
    codec = ToyCodec(4)
    assert isinstance(codec, LatentCodec) and codec.latent_channels == 48
    frames = simulate(1, scripted_actions(1, 6)).frames  # (F, S, S, 3) uint8
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255
    latents = codec.encode(video)
    assert latents.shape == (1, 6, 48, 8, 8)
    torch.testing.assert_close(codec.decode(latents), video, atol=1e-6, rtol=0)
    stored = latents.half()  # as in the shards: still the same 8-bit frames
    pixels = (codec.decode(stored) * 255).round().to(torch.uint8)[0].permute(0, 2, 3, 1).numpy()
    assert np.array_equal(pixels, frames)


def test_toy_codec_rejects_bad_sizes():
    with pytest.raises(ValueError, match="divisible by 4"):
        ToyCodec(4).encode(torch.rand(1, 1, 3, 10, 12))
    with pytest.raises(ValueError, match="48-channel"):
        ToyCodec(4).decode(torch.rand(1, 1, 12, 2, 2))


def test_hash_text_encoder_is_deterministic_and_discriminative():
    enc = HashTextEncoder(dim=32, max_tokens=8)
    assert isinstance(enc, TextEncoder)
    a = enc.encode(["a red circle bounces", "a blue square bounces"])
    assert a.shape == (2, 8, 32)
    assert torch.equal(a, HashTextEncoder(dim=32, max_tokens=8).encode(["a red circle bounces",
                                                                          "a blue square bounces"]))
    assert not torch.allclose(a[0], a[1])
    assert torch.count_nonzero(a[0, 4:]) == 0  # padding after the 4 words
