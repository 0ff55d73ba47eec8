"""The learned codec: trains, saves atomically, loads as a `LatentCodec`, and refuses a file that is not the one a
dataset was encoded with."""

import pytest
import torch

from lightning_aapt.codecs import LatentCodec
from lightning_aapt.codecs.learned import (
    AutoencoderConfig,
    CodecTraining,
    LearnedCodec,
    save_codec,
    train_codec,
)
from lightning_aapt.errors import DataError
from lightning_aapt.files import file_sha256

pytestmark = pytest.mark.unit

CFG = AutoencoderConfig(spatial_factor=4, latent_channels=4, width=8, max_width=16)


def test_a_trained_codec_round_trips_better_than_untrained_and_streams_frame_by_frame(tmp_path):
    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(64, 3, 1, 1, generator=g) * torch.ones(64, 3, 8, 8))  # flat colours: easy to learn
    bodies = torch.zeros(64, 1, 8, 8)
    untrained = train_codec(frames, bodies, CFG, CodecTraining(steps=0))
    trained = train_codec(frames, bodies, CFG, CodecTraining(steps=200, batch_size=16, lr=1e-2))
    with torch.no_grad():
        error = [(m.decode(m.encode(frames)) - frames).pow(2).mean() for m in (untrained, trained)]
    assert error[1] < 0.25 * error[0]
    save_codec(trained, tmp_path / "codec.pt", {"steps": 200})
    codec = LearnedCodec(tmp_path / "codec.pt")
    assert isinstance(codec, LatentCodec) and codec.latent_channels == 4 and codec.spatial_factor == 4
    video = frames[:6].view(2, 3, 3, 8, 8)  # (B, T, 3, S, S)
    latents = codec.encode(video)
    assert latents.shape == (2, 3, 4, 2, 2)
    decoded = codec.decode(latents)
    assert decoded.shape == video.shape and decoded.min() >= 0 and decoded.max() <= 1
    stream = codec.stream_decoder()
    torch.testing.assert_close(torch.cat([stream.step(latents[:, f]) for f in range(3)], dim=1), decoded)
    assert codec.training == {"steps": 200} and codec.sha256 == file_sha256(tmp_path / "codec.pt")


def test_a_missing_or_different_codec_file_is_refused_by_name(tmp_path):
    with pytest.raises(DataError, match=r"codec file .*nope\.pt does not exist"):
        LearnedCodec(tmp_path / "nope.pt")
    save_codec(train_codec(torch.rand(4, 3, 8, 8), torch.zeros(4, 1, 8, 8), CFG, CodecTraining(steps=0)),
               tmp_path / "a.pt", {})
    with pytest.raises(DataError, match="a different codec"):
        LearnedCodec(tmp_path / "a.pt", sha256="0" * 64)
    with pytest.raises(ValueError, match="power of 2"):
        AutoencoderConfig(spatial_factor=6)
