"""The Wan VAE codec and the umT5 text encoder against diffusers/transformers run directly."""

import pytest
import torch

from lightning_aapt.codecs import LatentCodec
from lightning_aapt.codecs.base import latent_frames, video_frames
from tests.wan import tiny

pytestmark = pytest.mark.wan
pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def vaes(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    tiny.save_vae(root / "wan21")
    tiny.save_vae(root / "wan22", wan22=True)
    return root


@pytest.mark.parametrize("layout", ["wan21", "wan22"])
def test_streaming_decode_equals_full_decode(vaes, layout):
    from lightning_aapt.codecs.wan import WanVAECodec

    codec = WanVAECodec(vaes / layout)
    assert isinstance(codec, LatentCodec) and codec.first_frame_alone
    video = torch.rand(2, 13, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    latents = codec.encode(video)
    s = codec.spatial_factor
    assert latents.shape == (2, 4, 4, 32 // s, 32 // s) and latent_frames(codec, 13) == 4
    full = codec.decode(latents)
    assert full.shape == (2, 13, 3, 32, 32) and video_frames(codec, 4) == 13
    decoder = codec.stream_decoder()
    for _ in range(2):  # reset starts a new stream
        parts = [decoder.step(latents[:, f]) for f in range(4)]
        assert [p.shape[1] for p in parts] == [1, 4, 4, 4]
        assert torch.equal(torch.cat(parts, dim=1), full)
        decoder.reset()


def test_encode_is_causal_and_normalised_by_the_vaes_statistics(vaes):
    from lightning_aapt.codecs.wan import WanVAECodec

    codec = WanVAECodec(vaes / "wan21")
    video = torch.rand(1, 9, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    latents = codec.encode(video)
    assert torch.allclose(codec.encode(video[:, :1]), latents[:, :1], atol=1e-6)  # frame 0 encoded alone
    assert torch.allclose(codec.encode(video[:, :5]), latents[:, :2], atol=1e-6)  # a causal prefix
    raw = codec.vae.encode(video.transpose(1, 2) * 2 - 1).latent_dist.mode().transpose(1, 2)  # (1, F, z, h, w)
    mean, std = torch.tensor(tiny.VAE["latents_mean"]), torch.tensor(tiny.VAE["latents_std"])
    torch.testing.assert_close(latents, (raw - mean[:, None, None]) / std[:, None, None])
    with pytest.raises(ValueError, match=r"encodes 1 \+ 4k video frames"):
        codec.encode(video[:, :8])


@pytest.fixture(scope="module")
def umt5(tmp_path_factory):
    root = tmp_path_factory.mktemp("umt5")
    tiny.save_umt5(root / "text_encoder")
    tiny.save_tokenizer(root / "tokenizer")
    return root


def test_umt5_pads_with_zero_rows_as_wan(umt5):
    from transformers import AutoTokenizer, UMT5EncoderModel

    from lightning_aapt.text import TextEncoder, trimmed_lengths
    from lightning_aapt.text.umt5 import UMT5TextEncoder

    encoder = UMT5TextEncoder(umt5)
    assert isinstance(encoder, TextEncoder) and encoder.dim == 32 and encoder.max_tokens == 512
    prompts = ["a red ball rolls   left", "the green square moves &amp; slowly over grass"]
    out = encoder.encode(prompts)
    assert out.shape == (2, 512, 32)
    lengths = trimmed_lengths(out)
    assert lengths == [6, 9]  # words + the end token ("&" is one unknown token after unescaping)
    assert all(out[i, :n].abs().amax(dim=-1).min() > 0 and out[i, n:].abs().max() == 0
               for i, n in enumerate(lengths))
    tokenizer = AutoTokenizer.from_pretrained(umt5 / "tokenizer")
    model = UMT5EncoderModel.from_pretrained(umt5 / "text_encoder").eval()
    ids = tokenizer(["a red ball rolls left"], return_tensors="pt").input_ids  # no padding at all
    with torch.no_grad():
        alone = model(ids).last_hidden_state[0]
    torch.testing.assert_close(out[0, :6], alone, atol=1e-5, rtol=1e-5)  # padding is masked out exactly
    assert torch.equal(encoder.encode(prompts), out)
