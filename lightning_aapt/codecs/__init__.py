"""Latent codecs: the protocol every video autoencoder implements, the toy codec, and latent normalisation."""

import re

from lightning_aapt.codecs.base import LatentCodec
from lightning_aapt.codecs.learned import LearnedCodec
from lightning_aapt.codecs.normalized import LatentStats, NormalizedCodec
from lightning_aapt.codecs.toy import ToyCodec

WAN_CODECS = ("wan2.1-vae", "wan2.2-vae")
KNOWN_CODECS = ("no decoder for it: toy-dct<block> is built in, learned-ae loads a trained autoencoder, wan2.1-vae / "
                "wan2.2-vae load Wan's VAE; another VAE needs its LatentCodec adapter")


def known_codec(name: str) -> bool:
    """Whether `codec_from_name` can build the codec a manifest names."""
    return bool(re.fullmatch(r"toy-dct\d+", name)) or name in (LearnedCodec.name, *WAN_CODECS)


def codec_from_name(name: str, path: str | None = None, sha256: str | None = None) -> LatentCodec:
    """The codec a dataset's manifest names (`codec.name`, `codec.path`, `codec.sha256`): `toy-dct<b>` is built in;
    `learned-ae` loads a trained autoencoder from `path` (refused when its SHA-256 differs from the recorded one);
    `wan2.1-vae` / `wan2.2-vae` load Wan's VAE from `path` (the `[wan]` extra)."""
    match = re.fullmatch(r"toy-dct(\d+)", name)
    if match:
        return ToyCodec(int(match.group(1)))
    if name == LearnedCodec.name:
        if not path:
            raise ValueError(f"codec {name} needs its file's path (the manifest's codec.path)")
        return LearnedCodec(path, sha256)
    if name in WAN_CODECS:
        if not path:
            raise ValueError(f"codec {name} needs the VAE's path (the manifest's codec.path)")
        from lightning_aapt.codecs.wan import WanVAECodec

        return WanVAECodec(path, name=name)
    raise ValueError(f"codec {name!r}: {KNOWN_CODECS}")


__all__ = ["KNOWN_CODECS", "LatentCodec", "LatentStats", "LearnedCodec", "NormalizedCodec", "ToyCodec",
           "codec_from_name", "known_codec"]
