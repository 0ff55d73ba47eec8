"""Latent codecs: the protocol every video autoencoder implements, and the toy codec."""

import re

from lightning_aapt.codecs.base import LatentCodec
from lightning_aapt.codecs.toy import ToyCodec


def codec_from_name(name: str) -> LatentCodec:
    """The codec a dataset's manifest names (`codec.name`): `toy-dct<b>` is built-in; a real VAE needs its adapter."""
    match = re.fullmatch(r"toy-dct(\d+)", name)
    if match:
        return ToyCodec(int(match.group(1)))
    raise ValueError(f"no decoder for codec {name!r}: the toy codec is built in (toy-dct<block>); a real VAE "
                     "needs its LatentCodec adapter")


__all__ = ["LatentCodec", "ToyCodec", "codec_from_name"]
